"""Collections DPD end to end through Dagster on a small hand-made book: exact DPD and buckets
per case, idempotent re-runs, a 30-day backfill in one run equal to 30 single-day runs, and
escalation to legal exactly once."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_pipelines.assets.collections.assets import COLLECTIONS_ASSETS
from lending_pipelines.assets.collections.jobs import COLLECTIONS_JOBS
from lending_pipelines.db.collections.dpd import loan_buckets_on
from lending_pipelines.db.collections.tables import (
    dpd_bucket_changes,
    dpd_daily_summary,
    dpd_days,
    legal_escalations,
)
from lending_pipelines.db.common import audit_log
from lending_pipelines.db.flags import set_flag
from tests.collections_book import (
    add_collectors,
    add_loan,
    collections_resources,
    loan_state,
    pay,
    run_job,
)

D = date(2026, 10, 31)
DAILY = "collections_daily_job"


def ago(days: int) -> date:
    return D - timedelta(days=days)


@pytest.fixture
def defs(database):
    return dg.Definitions(
        assets=COLLECTIONS_ASSETS,
        jobs=COLLECTIONS_JOBS,
        resources=collections_resources(database),
    )


@pytest.fixture
def book(db):
    with db.begin() as conn:
        add_collectors(conn, "asha", "ravi")
        loans = {
            "paid_on_due_date": add_loan(conn, [(ago(10), 1000_00)], collector="asha"),
            "partially_paid": add_loan(conn, [(ago(10), 1000_00)], collector="asha"),
            "paid_late_then_current": add_loan(
                conn, [(ago(40), 500_00), (ago(10), 500_00)], collector="ravi"
            ),
            "nothing_due_yet": add_loan(conn, [(ago(-20), 700_00)], collector="ravi"),
            "closed": add_loan(conn, [(ago(50), 300_00)], status="CLOSED"),
            "dpd_95": add_loan(conn, [(ago(95), 100_00), (ago(65), 100_00)], collector="ravi"),
            "dpd_90": add_loan(conn, [(ago(90), 100_00)]),
            "written_off_120": add_loan(conn, [(ago(120), 100_00)], status="WRITTEN_OFF"),
            "due_today": add_loan(conn, [(D, 100_00)]),
        }
        pay(conn, loans["paid_on_due_date"], 1000_00, ago(10))
        pay(conn, loans["partially_paid"], 500_00, ago(10))
        pay(conn, loans["paid_late_then_current"], 500_00, ago(5))
        pay(conn, loans["paid_late_then_current"], 500_00, ago(1))
    return loans


EXPECTED = {
    "paid_on_due_date": (0, "current", "ACTIVE"),
    "partially_paid": (10, "1-30", "ACTIVE"),
    "paid_late_then_current": (0, "current", "ACTIVE"),
    "nothing_due_yet": (0, "current", "ACTIVE"),
    "closed": (0, "current", "CLOSED"),  # not tracked: never computed
    "dpd_95": (95, "90+", "LEGAL"),
    "dpd_90": (90, "61-90", "LEGAL"),
    "written_off_120": (0, "current", "WRITTEN_OFF"),  # never computed, never escalated
    "due_today": (0, "current", "ACTIVE"),
}


def test_daily_run_gives_exact_dpd_and_bucket_for_every_case_and_escalates_once(db, defs, book):
    assert run_job(defs, DAILY, partition_key=D.isoformat()).success
    with db.connect() as conn:
        states = {name: loan_state(conn, loan) for name, loan in book.items()}
    assert states == EXPECTED

    assert run_job(defs, DAILY, partition_key=D.isoformat()).success  # re-run: nothing new
    with db.connect() as conn:
        escalations = conn.execute(
            sa.select(legal_escalations.c.loan_id, legal_escalations.c.dpd).order_by("loan_id")
        ).all()
        audits = conn.execute(
            sa.select(audit_log.c.entity_id, audit_log.c.run_id).where(
                audit_log.c.action == "collections.escalate_to_legal"
            )
        ).all()
        summary = dict(
            conn.execute(
                sa.select(dpd_daily_summary.c.bucket, dpd_daily_summary.c.loans).where(
                    dpd_daily_summary.c.business_date == D
                )
            ).all()
        )
    assert [tuple(e) for e in escalations] == [(book["dpd_95"], 95), (book["dpd_90"], 90)]
    assert sorted(int(a.entity_id) for a in audits) == [book["dpd_95"], book["dpd_90"]]
    assert all(a.run_id for a in audits)
    assert summary == {"current": 4, "1-30": 1, "31-60": 0, "61-90": 1, "90+": 1}


def test_a_past_day_re_run_after_later_payments_is_unchanged(db, defs, book):
    day = ago(6)
    assert run_job(defs, DAILY, partition_key=day.isoformat()).success
    with db.connect() as conn:
        before = loan_buckets_on(conn, day)
        changes_before = conn.execute(sa.select(dpd_bucket_changes).order_by("loan_id")).all()
        # paid late: 34 days past due six days ago
        assert loan_state(conn, book["paid_late_then_current"])[:2] == (34, "31-60")
    with db.begin() as conn:
        pay(conn, book["partially_paid"], 500_00, D)  # later than the day: does not count
    assert run_job(defs, DAILY, partition_key=day.isoformat()).success
    with db.connect() as conn:
        assert loan_buckets_on(conn, day) == before
        assert conn.execute(sa.select(dpd_bucket_changes).order_by("loan_id")).all() == (
            changes_before
        )


def _history(conn):
    changes = conn.execute(sa.select(dpd_bucket_changes).order_by("loan_id", "business_date")).all()
    summary = conn.execute(sa.select(dpd_daily_summary).order_by("business_date", "bucket")).all()
    days = conn.execute(sa.select(dpd_days.c.business_date, dpd_days.c.loans)).all()
    return changes, summary, sorted(days)


def test_a_30_day_backfill_is_one_run_with_the_rows_of_30_single_day_runs(db, defs, book):
    set_flag_off(db)
    first, last = ago(29), D
    for offset in range(30):
        assert run_job(defs, DAILY, partition_key=(first + timedelta(days=offset)).isoformat())
    with db.connect() as conn:
        single_days = _history(conn)
        single_states = {name: loan_state(conn, loan) for name, loan in book.items()}
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE lending.dpd_bucket_changes, lending.dpd_daily_summary, "
                             "lending.dpd_days"))  # fmt: skip
    instance = dg.DagsterInstance.ephemeral()
    result = run_job(
        defs, DAILY, partition_range=(first.isoformat(), last.isoformat()), instance=instance
    )
    assert result.success
    assert len(instance.get_run_records()) == 1
    with db.connect() as conn:
        assert _history(conn) == single_days
        assert {name: loan_state(conn, loan) for name, loan in book.items()} == single_states
    assert len(single_days[2]) == 30
    # the history is bounded by changes: far fewer rows than loans x days
    assert len(single_days[0]) < 3 * len(book)


def set_flag_off(db):
    with db.begin() as conn:
        set_flag(conn, "ESCALATION_ENABLED", False, "test", "history only")
