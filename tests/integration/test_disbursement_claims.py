"""Claiming due disbursements on the real PostgreSQL: two sessions claiming at once get
disjoint rows, and the partner-wallet charge is taken in the claiming statement only."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from lending_pipelines.db import disbursement_attempts as attempts_db
from lending_pipelines.db import loans as loans_db
from tests.integration.test_loans_db import loan, partner


def six_due_requests(db) -> None:
    with db.begin() as conn:
        partner(conn, disbursement_charge_minor=1000, wallet_balance_minor=4500)
        loans_db.set_auto_disbursal(conn, "acme", [1])
    with db.begin() as conn:
        loans_db.upsert_tracked_loans(conn, [("acme", None, [loan(i) for i in range(1, 7)])])
        assert len(loans_db.create_disbursement_requests(conn)) == 6


def wallet(db) -> int:
    with db.connect() as conn:
        return conn.execute(sa.select(loans_db.partners.c.wallet_balance_minor)).scalar()


def test_two_sessions_claiming_at_once_get_disjoint_rows_and_charge_the_wallet_once(db):
    six_due_requests(db)
    claimed: dict[str, list[attempts_db.Claim]] = {}
    first_claimed = threading.Event()

    def first():
        with db.begin() as conn:
            claimed["first"] = attempts_db.due_submissions(conn, datetime.now(UTC))
            first_claimed.set()
            time.sleep(0.5)  # still inside its transaction while the second one claims

    def second():
        first_claimed.wait()
        with db.begin() as conn:
            claimed["second"] = attempts_db.due_submissions(conn, datetime.now(UTC))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.begin() as conn:  # and after the first committed: its live claims still hold
        claimed["third"] = attempts_db.due_submissions(conn, datetime.now(UTC))

    first_ids = [c.request.id for c in claimed["first"]]
    assert len(first_ids) == 6 and claimed["second"] == [] and claimed["third"] == []
    # 4500 covers four charges of 1000: those four are charged, the other two are refused
    assert [c.wallet_short for c in claimed["first"]] == [False] * 4 + [True] * 2
    assert wallet(db) == 500
    with db.connect() as conn:
        charges = conn.execute(
            sa.select(loans_db.disbursement_requests.c.charge_minor).order_by(
                loans_db.disbursement_requests.c.id
            )
        ).scalars()
        assert list(charges) == [1000] * 4 + [0] * 2


def test_claims_of_a_session_that_is_gone_lapse_and_are_not_charged_twice(db):
    six_due_requests(db)
    gone = db.connect()
    with gone.begin():
        pid = gone.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        assert len(attempts_db.due_submissions(gone, datetime.now(UTC))) == 6
    with db.begin() as conn:  # while its session lives, nobody else takes its rows
        assert attempts_db.due_submissions(conn, datetime.now(UTC)) == []
    gone.invalidate()  # the claiming process died: its database session is gone
    gone.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the server notices the closed socket
        with db.connect() as conn:
            alive = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar()
        if not alive:
            break
        time.sleep(0.05)
    with db.begin() as conn:
        again = attempts_db.due_submissions(conn, datetime.now(UTC))
    assert len(again) == 6 and wallet(db) == 500  # charged once, by the first claim
