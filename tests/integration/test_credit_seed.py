"""The credit demo book (`lending seed`): idempotent, every aging bucket populated, and each
credit schedule has something to do the first time it runs."""

from __future__ import annotations

import sqlalchemy as sa

from lending_dev.seed.credit import DEMO_RETAILERS, seed_credit
from lending_pipelines.assets.credit.partitions import TIMEZONE, today
from lending_pipelines.db.credit.exposure import outstanding_by_bucket
from lending_pipelines.db.credit.guardrails import breaching_retailers
from lending_pipelines.db.credit.recovery import unreversed_failed_debits
from lending_pipelines.db.credit.reminders import claim_due_reminders


def scalar(conn, sql: str) -> int:
    return conn.execute(sa.text(sql)).scalar_one()


def test_the_demo_book_covers_every_rule_and_seeding_twice_adds_nothing(db, settings):
    with db.begin() as conn:
        seed_credit(conn, settings)
    with db.connect() as conn:
        counts = {
            t: scalar(conn, f"SELECT count(*) FROM lending.{t}")
            for t in ("retailers", "orders", "credit_transactions", "pending_orders")
        }
    with db.begin() as conn:
        seed_credit(conn, settings)
    with db.begin() as conn:
        assert {t: scalar(conn, f"SELECT count(*) FROM lending.{t}") for t in counts} == counts
        assert counts["retailers"] == DEMO_RETAILERS
        buckets = outstanding_by_bucket(conn, business_date=today(), bounds=(30, 60, 90))
        assert all(b["debits"] > 0 for b in buckets), buckets
        statuses = dict(
            conn.execute(
                sa.text("SELECT credit_status, count(*) FROM lending.retailers GROUP BY 1")
            ).all()
        )
        assert statuses["PAUSED"] > 0 and statuses["BLOCKED"] > 0
        assert len(breaching_retailers(conn, business_date=today(), tz=TIMEZONE)) > 0
        near = scalar(
            conn,
            "SELECT count(*) FROM lending.credit_accounts a JOIN (SELECT retailer_id, "
            "sum(amount - cleared_amount) AS owed FROM lending.credit_transactions WHERE status "
            "IN ('OPEN', 'PARTIAL') GROUP BY 1) o USING (retailer_id) "
            "WHERE a.credit_limit - o.owed BETWEEN 0 AND 500",
        )
        assert near > 0
        assert claim_due_reminders(conn, business_date=today(), tz=TIMEZONE, window_days=3)
        ages = scalar(
            conn,
            "SELECT count(DISTINCT created_at < now() - interval '24 hours') "
            "FROM lending.pending_orders WHERE status = 'PENDING'",
        )
        assert ages == 2  # both younger and older than the expiry
        assert unreversed_failed_debits(conn)[0] > 0
        assert scalar(conn, "SELECT count(*) FROM lending.orders WHERE payment_mode = 'COD'") > 0
        on_due_date = scalar(
            conn,
            "SELECT count(*) FROM lending.credit_transactions WHERE status = 'CLEARED' "
            f"AND (cleared_at AT TIME ZONE '{TIMEZONE}')::date = due_date",
        )
        assert on_due_date > 0
