"""The daily payout retry: the same idempotency key while the outcome is unknown, a new key only
after Stripe shows no transfer for the item, final errors stop with their reason unless an
operator lists them — and never a second transfer."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from dagster import DagsterInstance, Definitions

from lending_pipelines.assets.payouts.assets import PAYOUT_ASSETS
from lending_pipelines.assets.payouts.checks import PAYOUT_CHECKS
from lending_pipelines.assets.payouts.jobs import PAYOUT_JOBS
from lending_pipelines.db import payouts as payouts_db
from tests.e2e.test_payouts_e2e import (
    AS_OF,
    PARTITION_DATE,
    add_creator,
    assert_no_duplicate_transfers,
    items_by_ref,
    payout_resources,
    payout_settings,  # noqa: F401  (fixture)
    run_payouts,
    stripe_accounts,
)


def retry(resources: dict, **config):
    defs = Definitions(
        assets=PAYOUT_ASSETS, asset_checks=PAYOUT_CHECKS, jobs=PAYOUT_JOBS, resources=resources
    )
    return defs.resolve_job_def("payout_retry_job").execute_in_process(
        run_config={"ops": {"retry_failed_payout_items": {"config": config}}},
        instance=DagsterInstance.ephemeral(),
    )


def make_batch(engine, sandbox, db_url, refs=("a", "b", "c"), **stripe) -> dict:
    stripe_accounts(sandbox, *[{"id": f"acct_e2e_{ref}"} for ref in refs])
    with engine.begin() as conn:
        for ref in refs:
            add_creator(conn, ref, earnings=[(400, AS_OF - timedelta(days=10))])
    resources = payout_resources(db_url, sandbox, **{"max_network_retries": 0, **stripe})
    run_payouts(resources, selection=["eligible_creators", "payout_batch"])
    return resources


def test_a_stored_500_is_retried_with_a_new_key_after_confirming_no_transfer(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    resources = make_batch(db, sandbox, db_url)
    sandbox.configure("stripe", {"transfer_failure_rate": 1})
    run_payouts(resources)
    items = items_by_ref(db)
    assert {row.status for row in items.values()} == {"failed"}
    assert all(row.retryable and row.outcome_unknown for row in items.values())

    sandbox.configure("stripe", {"transfer_failure_rate": 0})
    assert retry(resources).success
    items = items_by_ref(db)
    assert {row.status for row in items.values()} == {"paid"}
    assert {row.key_generation for row in items.values()} == {2}
    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == 3
    assert set(state["transfers_per_idempotency_key"]) == {
        f"{row.idempotency_key}:g2" for row in items.values()
    }
    assert state["requests"]["replayed"] == 3  # the same key first: Stripe replayed its 500
    with db.connect() as conn:
        assert payouts_db.get_batch(conn, PARTITION_DATE).status == "completed"


def test_an_unknown_outcome_is_resolved_with_the_same_key_without_a_second_transfer(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    resources = make_batch(db, sandbox, db_url, timeout_seconds=0.3)
    sandbox.configure("stripe", {"lost_response_rate": 1})  # transfers made, answers lost
    run_payouts(resources)
    items = items_by_ref(db)
    assert {row.error_kind for row in items.values()} == {"connection"}
    assert sandbox.state("stripe")["transfer_count"] == 3

    sandbox.configure("stripe", {"lost_response_rate": 0})
    assert retry(resources).success
    items = items_by_ref(db)
    assert {row.status for row in items.values()} == {"paid"}
    assert {row.key_generation for row in items.values()} == {1}
    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == 3


def test_an_old_unknown_outcome_is_looked_up_instead_of_trusting_the_key(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    resources = make_batch(db, sandbox, db_url, timeout_seconds=0.3)
    sandbox.configure("stripe", {"lost_response_rate": 1})
    run_payouts(resources)
    sandbox.configure("stripe", {"lost_response_rate": 0})
    with db.begin() as conn:  # Stripe may have pruned keys this old
        conn.execute(
            sa.update(payouts_db.payout_items).values(
                last_attempt_at=sa.func.now() - sa.text("interval '30 hours'")
            )
        )
    assert retry(resources).success
    assert {row.status for row in items_by_ref(db).values()} == {"paid"}
    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == 3 and state["requests"].get("replayed", 0) == 0


def test_final_errors_stop_with_their_reason_until_an_operator_lists_them(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    resources = make_batch(db, sandbox, db_url)
    sandbox.configure("stripe", {"balance": {"usd": 3_000}})  # enough for one of three
    run_payouts(resources)
    items = items_by_ref(db)
    failed = [row for row in items.values() if row.status == "failed"]
    assert len(failed) == 2
    assert {row.error_kind for row in failed} == {"balance_insufficient"}
    assert all(row.retryable is False for row in failed)
    assert all("platform's available Stripe balance" in row.error_message for row in failed)

    assert retry(resources).success  # nothing retried: final
    assert sandbox.state("stripe")["transfer_count"] == 1

    assert retry(resources, dry_run=True, retry_final_kinds=["balance_insufficient"]).success
    assert sandbox.state("stripe")["transfer_count"] == 1

    sandbox.configure("stripe", {"balance": {"usd": 1_000_000}})  # the platform tops up
    assert retry(resources, retry_final_kinds=["balance_insufficient"]).success
    items = items_by_ref(db)
    assert {row.status for row in items.values()} == {"paid"}
    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == 3
    # the refused key stays refused at Stripe; the new attempt used a new one
    assert sorted(row.key_generation for row in items.values()) == [1, 2, 2]


def test_a_rate_limited_item_is_retried_with_the_same_key(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    resources = make_batch(db, sandbox, db_url, refs=("a",), rate_limit_max_retries=1)
    sandbox.set_faults({"stripe": {"rate_limit_rate": 1}})
    run_payouts(resources)
    [item] = items_by_ref(db).values()
    assert item.error_kind == "rate_limited" and not item.outcome_unknown
    sandbox.clear_faults()
    assert retry(resources).success
    [item] = items_by_ref(db).values()
    assert item.status == "paid" and item.key_generation == 1
    assert sandbox.state("stripe")["transfers_per_idempotency_key"] == {item.idempotency_key: 1}
