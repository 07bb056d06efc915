"""A polling cycle turns tens of thousands of loans into objects that live until the cycle ends;
the cyclic garbage collector's passes over them cost about a third of the cycle's CPU, so it is
paused for the cycle (the loans hold no cycles) and restored after, also when a partner fails."""

from __future__ import annotations

import gc

import httpx
import respx
import sqlalchemy as sa

from lending_pipelines.db import loans as loans_db
from lending_pipelines.resources.fineract import API_PREFIX, TENANT_HEADER, FineractResource
from lending_pipelines.workflows.loans.polling import run_polling_cycle
from tests.integration.test_loans_db import BOX, partner
from tests.unit.test_fineract_resource import loan_json


@respx.mock
def test_the_collector_is_paused_while_a_cycle_polls_and_restored_after(db):
    with db.begin() as conn:
        partner(conn, "acme")
        partner(conn, "down")
    collector_on_during_polls: list[bool] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers[TENANT_HEADER] == "down":
            return httpx.Response(503)
        collector_on_during_polls.append(gc.isenabled())
        loans = [loan_json(1), loan_json(2)]
        return httpx.Response(200, json={"totalFilteredRecords": 2, "pageItems": loans})

    respx.get(f"http://f.test{API_PREFIX}/loans").mock(side_effect=answer)
    assert gc.isenabled()
    fineract = FineractResource(max_attempts=1, timeout_seconds=5)
    cycle = run_polling_cycle(db, BOX, fineract, concurrency=4, timeout_seconds=10)
    assert gc.isenabled()
    assert collector_on_during_polls == [False]
    assert [poll.partner_id for poll in cycle.failed] == ["down"] and cycle.new_loans == 2
    with db.connect() as conn:
        tracked = conn.execute(sa.select(loans_db.loan_tracking.c.fineract_loan_id)).scalars()
        assert sorted(tracked) == [1, 2]
