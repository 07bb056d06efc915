"""How old an idempotency key is, items stuck in `processing`, and no database transaction held
open while Stripe is called — checked in the sandbox's own ledger."""

from __future__ import annotations

import sqlalchemy as sa

from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.resources.stripe_connect import StripeConnectResource
from lending_pipelines.workflows.payouts.processing import run_chunk_worker
from tests.e2e.test_payouts_e2e import (
    PARTITION_DATE,
    assert_no_duplicate_transfers,
    items_by_ref,
    payout_settings,  # noqa: F401  (fixture)
    run_payouts,
)
from tests.integration.test_payouts_retry import make_batch, retry


def test_a_key_first_sent_over_20_hours_ago_is_looked_up_even_after_a_recent_attempt(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    """Stripe prunes a key 24 h after its *first* use: an attempt an hour ago does not make a
    key first sent 25 h ago trustworthy again. The transfer group is looked up first."""
    resources = make_batch(db, sandbox, db_url, timeout_seconds=0.3)
    sandbox.configure("stripe", {"lost_response_rate": 1})  # transfers made, answers lost
    run_payouts(resources)
    assert sandbox.state("stripe")["transfer_count"] == 3
    sandbox.configure("stripe", {"lost_response_rate": 0, "forget_idempotency_keys": True})
    with db.begin() as conn:
        conn.execute(
            sa.update(payouts_db.payout_items).values(
                claimed_at=sa.func.now() - sa.text("interval '25 hours'"),
                key_sent_at=sa.func.now() - sa.text("interval '25 hours'"),
                last_attempt_at=sa.func.now() - sa.text("interval '1 hour'"),
            )
        )
    assert retry(resources).success
    items = items_by_ref(db)
    assert {row.status for row in items.values()} == {"paid"}
    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == 3
    assert {row.stripe_transfer_id for row in items.values()} == {
        t["id"] for t in state["transfers"]
    }


def test_items_stuck_in_processing_from_an_old_date_are_settled_by_the_retry_job(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    """Three items a dead run left `processing` two days ago: one whose transfer Stripe made,
    one sent without a transfer at Stripe, one never sent. The daily retry settles all three
    and pays each exactly once."""
    resources = make_batch(db, sandbox, db_url)
    items = items_by_ref(db)
    client = StripeConnectResource(
        api_key="sk_test_payouts_stuck_00001", api_base=sandbox.url("stripe")
    ).get_client()
    made = client.create_transfer(
        amount=items["a"].amount_minor,
        currency=items["a"].currency,
        destination=items["a"].destination_account,
        idempotency_key=items["a"].idempotency_key,
        transfer_group=items["a"].idempotency_key,
    )
    two_days_ago = sa.func.now() - sa.text("interval '2 days'")
    with db.begin() as conn:
        for ref, sent in (("a", True), ("b", True), ("c", False)):
            conn.execute(
                sa.update(payouts_db.payout_items)
                .where(payouts_db.payout_items.c.id == items[ref].id)
                .values(
                    status="processing",
                    claimed_by="dead-run",
                    claimed_at=two_days_ago,
                    attempts=1 if sent else 0,
                    last_attempt_at=two_days_ago if sent else None,
                    key_sent_at=two_days_ago if sent else None,
                )
            )
    assert retry(resources).success
    items = items_by_ref(db)
    assert {ref: row.status for ref, row in items.items()} == dict.fromkeys("abc", "paid")
    assert items["a"].stripe_transfer_id == made.id
    assert items["b"].key_generation == 2  # looked up, nothing found, a new key
    assert items["c"].key_generation == 1
    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == 3
    with db.connect() as conn:
        assert payouts_db.get_batch(conn, PARTITION_DATE).status == "completed"


class WatchTransactions:
    """Wraps a Stripe client: during every transfer call, records the sessions of this database
    that sit inside an open transaction (what PgBouncer in transaction mode and
    idle_in_transaction_session_timeout cannot live with)."""

    def __init__(self, client, engine) -> None:
        self._client = client
        self._engine = engine
        self.seen: list[list[str]] = []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def create_transfer(self, **kwargs):
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            self.seen.append(
                list(
                    conn.execute(
                        sa.text(
                            "SELECT coalesce(left(query, 60), '') FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                            "AND state LIKE 'idle in transaction%'"
                        )
                    ).scalars()
                )
            )
        return self._client.create_transfer(**kwargs)


def test_no_database_transaction_is_open_while_stripe_is_called(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    make_batch(db, sandbox, db_url, refs=("a", "b", "c", "d"))
    with db.connect() as conn:
        batch = payouts_db.get_batch(conn, PARTITION_DATE)
    client = StripeConnectResource(
        api_key="sk_test_payouts_notx_000001", api_base=sandbox.url("stripe")
    ).get_client()
    watch = WatchTransactions(client, db)
    report = run_chunk_worker(db, batch.batch_id, watch, run_id="watched-run")
    assert report.paid == 4
    assert len(watch.seen) == 4
    assert watch.seen == [[]] * 4
    assert sandbox.state("stripe")["transfer_count"] == 4
