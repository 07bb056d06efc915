"""Launchpad jobs (typed config with actor and reason): reassign a collector, record a manual
payment, release a quarantined row after correction, close a loan — each audited with before,
after, actor, reason and run id in the transaction of the change, each refusal naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_pipelines.assets.collections.jobs import COLLECTIONS_JOBS
from lending_pipelines.assets.collections.partitions import TIMEZONE
from lending_pipelines.db.collections.tables import (
    collection_loans,
    installments,
    payment_rejections,
    payments,
)
from lending_pipelines.db.common import audit_log
from tests.collections_book import (
    add_collectors,
    add_loan,
    collections_resources,
    loan_state,
    run_job,
)

TODAY = datetime.now(ZoneInfo(TIMEZONE)).date()
WHO = {"actor": "ops@example.com", "reason": "borrower called"}


@pytest.fixture
def defs(database):
    return dg.Definitions(
        jobs=COLLECTIONS_JOBS,
        resources=collections_resources(database),
    )


@pytest.fixture
def loan(db):
    with db.begin() as conn:
        add_collectors(conn, "asha", "ravi")
        return add_loan(conn, [(TODAY - timedelta(days=20), 1000_00)], collector="asha")


def audits(db, action):
    with db.connect() as conn:
        return conn.execute(sa.select(audit_log).where(audit_log.c.action == action)).all()


def test_reassigning_a_collector_is_audited_with_before_after_actor_reason_and_run(db, defs, loan):
    result = run_job(defs, "reassign_collector_job", config={**WHO, "loan_id": loan,
                                                             "collector_id": "ravi"})  # fmt: skip
    assert result.success
    with db.connect() as conn:
        collector = conn.execute(
            sa.select(collection_loans.c.collector_id).where(collection_loans.c.id == loan)
        ).scalar_one()
    assert collector == "ravi"
    (entry,) = audits(db, "collections.reassign_collector")
    assert (entry.old_value, entry.new_value) == (
        {"collector_id": "asha"},
        {"collector_id": "ravi"},
    )
    assert (entry.actor, entry.reason, entry.run_id) == (WHO["actor"], WHO["reason"], result.run_id)

    refused = run_job(defs, "reassign_collector_job", raise_on_error=False,
                      config={**WHO, "loan_id": loan, "collector_id": "nobody"})  # fmt: skip
    assert not refused.success
    assert "collector_id 'nobody'" in str(refused.get_step_failure_events()[0].event_specific_data)
    assert len(audits(db, "collections.reassign_collector")) == 1


def test_a_manual_payment_is_validated_like_a_file_row_then_posted_and_audited(db, defs, loan):
    ok = run_job(defs, "manual_payment_job", config={
        **WHO, "loan_id": str(loan), "utr": "633400000001", "amount": "1,200.00",
        "paid_on": TODAY.isoformat()})  # fmt: skip
    assert ok.success
    with db.connect() as conn:
        payment = conn.execute(sa.select(payments)).one()
        paid = conn.execute(sa.select(installments.c.amount_paid_minor)).scalar_one()
    assert (payment.source, payment.amount_minor, payment.overpaid_minor) == (
        "manual", 1200_00, 200_00)  # fmt: skip
    assert paid == 1000_00
    (entry,) = audits(db, "collections.manual_payment")
    assert entry.new_value["payment_id"] == payment.id and entry.run_id == ok.run_id

    backdated = (TODAY - timedelta(days=8)).isoformat()
    bad = run_job(defs, "manual_payment_job", raise_on_error=False, config={
        **WHO, "loan_id": str(loan), "utr": "633400000002", "amount": "10",
        "paid_on": backdated})  # fmt: skip
    assert not bad.success
    with db.connect() as conn:
        (rejection,) = conn.execute(sa.select(payment_rejections)).all()
        assert conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar() == 1
    assert (rejection.reason_code, rejection.field, rejection.value) == (
        "backdated", "paid_on", backdated)  # fmt: skip


def test_a_quarantined_row_is_released_once_after_correction(db, defs, loan):
    run_job(defs, "manual_payment_job", raise_on_error=False, config={
        **WHO, "loan_id": str(loan), "utr": "633400000003", "amount": "5OO",
        "paid_on": TODAY.isoformat()})  # fmt: skip
    with db.connect() as conn:
        rejection_id = conn.execute(sa.select(payment_rejections.c.id)).scalar_one()

    still_bad = run_job(defs, "release_from_quarantine_job", raise_on_error=False,
                        config={**WHO, "rejection_id": rejection_id, "amount": "5,0O"})  # fmt: skip
    assert not still_bad.success
    released = run_job(defs, "release_from_quarantine_job",
                       config={**WHO, "rejection_id": rejection_id, "amount": "500"})  # fmt: skip
    assert released.success
    with db.connect() as conn:
        payment = conn.execute(sa.select(payments)).one()
        rejection = conn.execute(sa.select(payment_rejections)).one()
    assert (payment.source, payment.amount_minor, payment.utr) == (
        "quarantine_release", 500_00, "633400000003")  # fmt: skip
    assert (rejection.status, rejection.released_payment_id) == ("released", payment.id)
    (entry,) = audits(db, "collections.release_from_quarantine")
    assert entry.old_value["raw"]["amount"] == "5OO" and entry.new_value["raw"]["amount"] == "500"

    again = run_job(defs, "release_from_quarantine_job", raise_on_error=False,
                    config={**WHO, "rejection_id": rejection_id})  # fmt: skip
    assert not again.success
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar() == 1


def test_only_a_paid_off_loan_closes_and_the_close_passes_the_guard(db, defs, loan):
    refused = run_job(defs, "close_loan_job", raise_on_error=False,
                      config={**WHO, "loan_id": loan})  # fmt: skip
    assert not refused.success
    assert audits(db, "collections.close_loan") == []
    assert run_job(defs, "manual_payment_job", config={
        **WHO, "loan_id": str(loan), "utr": "633400000004", "amount": "1000",
        "paid_on": TODAY.isoformat()}).success  # fmt: skip
    closed = run_job(defs, "close_loan_job", config={**WHO, "loan_id": loan})
    assert closed.success
    with db.connect() as conn:
        assert loan_state(conn, loan)[2] == "CLOSED"
    (entry,) = audits(db, "collections.close_loan")
    assert (entry.old_value, entry.new_value) == ({"status": "ACTIVE"}, {"status": "CLOSED"})
