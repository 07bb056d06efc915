"""Through Dagster, against the sandbox: one malformed loan no longer stops its partner's other
loans from being tracked and paid, and a server whose total lies is paged to its real end."""

from __future__ import annotations

import sqlalchemy as sa

from lending_pipelines.db import loans as loans_db
from lending_pipelines.db.fineract_records import fineract_bad_records
from lending_pipelines.resources.fineract import FineractResource
from tests.loans_world import *  # noqa: F403
from tests.metadata_text import shown

TENANTS = [
    {"id": "acme", "password": "acme-pass", "loans": 10, "invalid_phone_every": 0},
    {"id": "kilimo", "password": "kilimo-pass", "loans": 5, "invalid_phone_every": 0},
]


def check(result, name):
    [evaluation] = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return evaluation


def test_a_principal_of_12500_with_a_comma_sets_one_loan_aside_and_pays_the_other_nine(world):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.sandbox.configure(
        "fineract",
        {"corrupt_loans": {"tenant": "acme", "loan_ids": [4], "field": "principal",
                           "value": "12,500.00"}},
    )  # fmt: skip
    world.add_partner("acme")
    world.add_partner("kilimo")

    result = world.run("loan_polling_job")

    assert result.success
    tracked = {(r.partner_id, r.fineract_loan_id) for r in world.tracked()}
    assert len([t for t in tracked if t[0] == "acme"]) == 9 and ("acme", 4) not in tracked
    assert len([t for t in tracked if t[0] == "kilimo"]) == 5
    paid = {(r.partner_id, r.fineract_loan_id) for r in world.requests()}
    assert ("acme", 4) not in paid and len([p for p in paid if p[0] == "acme"]) == 9
    with world.engine.connect() as conn:
        [bad] = conn.execute(sa.select(fineract_bad_records)).all()
        attempts = {r.partner_id: r for r in conn.execute(sa.select(loans_db.poll_attempts))}
    assert (bad.partner_id, bad.fineract_loan_id, bad.field) == ("acme", 4, "principal")
    assert bad.value == "'12,500.00'" and bad.resolved_at is None
    assert attempts["acme"].ok and attempts["acme"].bad_records == 1
    assert check(result, "all_partners_polled").passed
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["bad_records"].value == 1
    assert "12,500.00" in shown(metadata["bad_record_details"])

    # The partner fixes the loan: the next poll tracks it and resolves the bad record.
    world.sandbox.configure(
        "fineract",
        {"corrupt_loans": {"tenant": "acme", "loan_ids": [4], "field": "principal",
                           "value": 12500}},
    )  # fmt: skip
    assert world.run("loan_polling_job").success
    assert ("acme", 4) in {(r.partner_id, r.fineract_loan_id) for r in world.tracked()}
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(fineract_bad_records.c.resolved_at)).scalar() is not None


def test_a_server_claiming_a_million_loans_is_paged_to_its_real_end_and_warned_about(world):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.sandbox.configure("fineract", {"claim_total": {"tenant": "acme", "total": 1_000_000}})
    world.add_partner("acme")
    world.fineract = FineractResource(page_size=3, page_concurrency=4, timeout_seconds=5)

    result = world.run("loan_polling_job")

    assert result.success
    assert len(world.tracked()) == 10
    with world.engine.connect() as conn:
        attempt = conn.execute(sa.select(loans_db.poll_attempts)).one()
    assert attempt.ok and attempt.pages <= 1 + 4 + 4
    assert (attempt.total_reported, attempt.records_received) == (1_000_000, 10)
    totals = check(result, "partner_totals_consistent")
    assert not totals.passed and "reported 1000000, pages held 10" in totals.description
