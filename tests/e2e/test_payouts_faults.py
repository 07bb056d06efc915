"""Creator payouts under faults: Stripe rate limiting (a 25 req/s bucket plus injected 429s),
10 % 5xx, lost answers, and an account restricted between the batch and its transfer. The
batch completes, nothing is paid twice, and only the restricted creator's item fails."""

from __future__ import annotations

from datetime import timedelta

import httpx
import respx
import sqlalchemy as sa

from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.resources.alerts import AlertsResource
from tests.e2e.test_payouts_e2e import (
    AS_OF,
    PARTITION_DATE,
    add_creator,
    assert_no_duplicate_transfers,
    items_by_ref,
    materializations,
    payout_resources,
    payout_settings,  # noqa: F401  (fixture)
    run_payouts,
    stripe_accounts,
    withdrawals,
)
from tests.metadata_text import shown

CREATORS = 24
ALERT_HOOK = "https://alerts.test/hooks/payouts"


def test_faults_complete_the_batch_with_no_duplicate_and_isolate_a_restricted_account(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    stripe_accounts(sandbox, *[{"id": f"acct_e2e_f{n:02d}"} for n in range(CREATORS)])
    with db.begin() as conn:
        for n in range(CREATORS):
            add_creator(conn, f"f{n:02d}", earnings=[(250 + n, AS_OF - timedelta(days=9))])
    resources = payout_resources(db_url, sandbox, timeout_seconds=0.5)
    resources["alerts"] = AlertsResource(webhook_url=ALERT_HOOK, retries=0)
    run_payouts(resources, selection=["eligible_creators", "payout_batch"])

    # Between the batch and the transfers, Stripe restricts one account.
    stripe_accounts(sandbox, {"id": "acct_e2e_f07", "transfers": "inactive"})
    sandbox.configure(
        "stripe", {"rate_limit_per_second": 25, "rate_limit_burst": 5, "lost_response_rate": 0.1}
    )
    sandbox.set_faults({"stripe": {"error_rate": 0.1, "rate_limit_rate": 0.1}})
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        hook = mock.post(ALERT_HOOK).mock(return_value=httpx.Response(200))
        result = run_payouts(resources)
    assert result.success  # failed items do not fail the run; the check and the alert report them

    faults = sandbox.admin.get("/_admin/faults").json()["counts"]
    stripe = sandbox.state("stripe")
    assert faults.get("stripe:error", 0) > 0 and faults.get("stripe:rate_limit", 0) > 0
    assert stripe["requests"].get("responses_lost", 0) > 0  # recovered by replay, not resent
    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == CREATORS - 1

    items = items_by_ref(db)
    failed = {ref: row for ref, row in items.items() if row.status != "paid"}
    assert list(failed) == ["f07"]
    assert failed["f07"].status == "failed"
    assert failed["f07"].error_kind == "invalid_account" and failed["f07"].retryable is False
    assert "insufficient_capabilities_for_transfer" in failed["f07"].error_message
    with db.connect() as conn:
        batch = payouts_db.get_batch(conn, PARTITION_DATE)
    assert batch.status == "completed_with_failures"
    assert (batch.paid_count, batch.failed_count, batch.pending_count) == (CREATORS - 1, 1, 0)
    assert len(withdrawals(db)) == CREATORS - 1

    metadata = materializations(result, "payout_transfers")
    assert metadata["failed"] == 1
    failures = shown(metadata["failures"])
    assert "invalid_account" in failures and "acct_e2e_f07" in failures
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["every_item_paid"].passed is False
    assert checks["ledger_matches_transfers"].passed is True
    assert hook.called and "1 failed" in hook.calls[0].request.content.decode()


def test_steps_per_run_stay_bounded_whatever_the_creator_count(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
    monkeypatch,
):
    creators = 150
    monkeypatch.setenv("LENDING_PAYOUT_CHUNK_SIZE", "2")  # 75 chunks
    from lending_pipelines.settings import get_settings

    get_settings.cache_clear()
    stripe_accounts(sandbox, *[{"id": f"acct_e2e_s{n:03d}"} for n in range(creators)])
    with db.begin() as conn:
        for n in range(creators):
            add_creator(conn, f"s{n:03d}", earnings=[(200, AS_OF - timedelta(days=8))])
    result = run_payouts(payout_resources(db_url, sandbox))
    assert result.success
    steps = {event.step_key for event in result.all_events if event.step_key}
    assert len(steps) <= 5  # eligible_creators, payout_batch, payout_transfers, two checks
    metadata = materializations(result, "payout_transfers")
    # LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS workers, not one per chunk, each of them paying
    assert metadata["workers"] == 5
    assert len(metadata["chunks_per_worker"]) == 5 and min(metadata["chunks_per_worker"]) >= 1
    assert sum(metadata["chunks_per_worker"]) == creators // 2
    assert sandbox.state("stripe")["transfer_count"] == creators
    with db.connect() as conn:
        chunks = conn.execute(
            sa.select(sa.func.count()).where(payouts_db.payout_chunks.c.status == "done")
        ).scalar_one()
    assert chunks == creators // 2
