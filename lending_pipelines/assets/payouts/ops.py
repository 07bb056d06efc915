"""The ops of the payout graph asset and of the op jobs (retry, Stripe events)."""

from dataclasses import asdict

import dagster as dg
from pydantic import Field

from ...db import payouts as db
from ...db.payouts import work
from ...partners.stripe import StripeConnectError
from ...resources.alerts import AlertsResource
from ...resources.database import DatabaseResource
from ...resources.payouts_config import PayoutsConfig
from ...resources.stripe_connect import StripeConnectResource
from ...workflows.payouts.processing import (
    STOP_RUN_KINDS,
    DuplicateTransferError,
    retry_item,
    run_chunk_worker,
)
from ...workflows.payouts.stripe_events import apply_stripe_events
from ..metadata import table_metadata
from .common import POOL, RETRY, money, stripe_limiter
from .partitions import payout_date_of

# --- payout_transfers (graph) ----------------------------------------------------------------


@dg.op(
    ins={"batch_ready": dg.In(dg.Nothing)},
    out=dg.DynamicOut(int),
    tags={"workflow": "creator_payouts"},
    description="Fan out one worker per chunk to process at once (at most "
    "LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS), never one step per chunk.",
)
def plan_payout_workers(
    context: dg.OpExecutionContext, database: DatabaseResource, payouts_config: PayoutsConfig
):
    payout_date = payout_date_of(context.partition_key)
    with database.begin() as conn:
        batch = db.get_batch(conn, payout_date)
        if batch is None:
            raise db.PayoutStateError(f"payout date {payout_date}: no batch; run payout_batch")
        open_chunks = db.open_chunk_count(conn, batch.batch_id)
        # a worker killed with its run (SIGKILL, OOM) left its chunk leased: free it once
        # Dagster knows that run has ended
        ended = [
            run_id
            for run_id in work.leasing_runs(conn, batch.batch_id)
            if run_id != context.run.run_id
            and (run := context.instance.get_run_by_id(run_id)) is not None
            and run.is_finished
        ]
        released = work.release_leases_of_runs(conn, batch.batch_id, ended)
    if released:
        context.log.warning(f"released {released} chunk lease(s) of ended runs {ended}")
    workers = max(1, min(payouts_config.max_concurrent_chunks, open_chunks))
    context.log.info(f"batch {payout_date}: {open_chunks} open chunks, {workers} workers")
    for number in range(workers):
        yield dg.DynamicOutput(number, mapping_key=f"worker_{number}")


@dg.op(
    pool=POOL,
    retry_policy=RETRY,
    tags={"workflow": "creator_payouts"},
    description="Claim chunks (FOR UPDATE SKIP LOCKED) and pay their items, one transaction "
    "per item, under the shared Stripe request-rate limit.",
)
def pay_payout_chunks(
    context: dg.OpExecutionContext,
    worker_no: int,
    database: DatabaseResource,
    stripe_connect: StripeConnectResource,
    payouts_config: PayoutsConfig,
) -> dict:
    payout_date = payout_date_of(context.partition_key)
    engine = database.get_engine()
    with engine.connect() as conn:
        batch = db.get_batch(conn, payout_date)
    if batch is None:
        raise db.PayoutStateError(f"payout date {payout_date}: no batch")
    client = stripe_connect.get_client(limiter=stripe_limiter(engine, payouts_config))
    try:
        report = run_chunk_worker(
            engine,
            batch.batch_id,
            client,
            run_id=context.run.run_id,
            lease_seconds=payouts_config.lease_seconds,
        )
    except DuplicateTransferError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except StripeConnectError as exc:
        if exc.kind in STOP_RUN_KINDS:  # bad credentials: retrying the step cannot help
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        raise
    context.log.info(f"worker {worker_no}: {asdict(report)}")
    return asdict(report)


@dg.op(
    out=dg.Out(dg.Nothing),
    tags={"workflow": "creator_payouts"},
    description="Bring the batch's totals and status up to date and report them.",
)
def finalize_payout_batch(
    context: dg.OpExecutionContext, reports: list[dict], database: DatabaseResource
) -> None:
    payout_date = payout_date_of(context.partition_key)
    with database.begin() as conn:
        batch = db.get_batch(conn, payout_date)
        if batch is None:
            raise db.PayoutStateError(f"payout date {payout_date}: no batch")
        totals = db.refresh_batch_totals(conn, batch.batch_id)
        failures = db.failed_items(conn, batch.batch_id)
    seconds = max((r["seconds"] for r in reports), default=0.0)
    transfers_made = sum(r["paid"] for r in reports)
    failure_rows = [
        {
            "creator": row.creator_id,
            "item": row.idempotency_key,
            "amount": money(row.amount_minor, totals.currency),
            "error": row.error_kind,
            "retryable": "yes" if row.retryable else "no",
            "reason": (row.error_message or "")[:160],
        }
        for row in failures
    ]
    context.add_output_metadata(
        {
            "payout_date": payout_date.isoformat(),
            "status": totals.status,
            "items": totals.item_count,
            "paid": totals.paid_count,
            "failed": totals.failed_count,
            "open": totals.pending_count,
            "paid_amount_minor": totals.paid_amount_minor,
            "failed_amount_minor": totals.failed_amount_minor,
            "paid_amount": money(totals.paid_amount_minor, totals.currency),
            "failed_amount": money(totals.failed_amount_minor, totals.currency),
            "workers": len(reports),
            "chunks_processed": sum(r["chunks"] for r in reports),
            "transfers_made_this_run": transfers_made,
            "transfers_replayed_this_run": sum(r["replayed"] for r in reports),
            "rate_limited_retries": sum(r["rate_limited_retries"] for r in reports),
            "transfers_per_second": round(transfers_made / seconds, 2) if seconds else 0.0,
            "failures": table_metadata(
                failure_rows, ["creator", "item", "amount", "error", "retryable", "reason"]
            ),
        }
    )


# --- daily retry ------------------------------------------------------------------------------


class PayoutRetryConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Report the plan, send nothing.")
    retry_final_kinds: list[str] = Field(
        default_factory=list,
        description="Final error kinds to retry anyway once fixed, e.g. balance_insufficient "
        "after a top-up or invalid_account after onboarding (never sent with the old key).",
    )
    max_attempts: int = Field(default=6, ge=1, description="Stripe calls per item at most.")
    limit: int = Field(default=2000, ge=1, description="Items per run at most.")


@dg.op(tags={"workflow": "creator_payouts"}, pool=POOL)
def retry_failed_payout_items(
    context: dg.OpExecutionContext,
    config: PayoutRetryConfig,
    database: DatabaseResource,
    stripe_connect: StripeConnectResource,
    payouts_config: PayoutsConfig,
) -> None:
    engine = database.get_engine()
    with engine.connect() as conn:
        item_ids = work.retry_candidates(
            conn,
            retry_final_kinds=config.retry_final_kinds,
            max_attempts=config.max_attempts,
            limit=config.limit,
            stuck_after_seconds=payouts_config.lease_seconds,
        )
    client = stripe_connect.get_client(limiter=stripe_limiter(engine, payouts_config))
    tally: dict[str, int] = {}
    for item_id in item_ids:
        plan, outcome = retry_item(
            engine,
            item_id,
            client,
            retry_final_kinds=config.retry_final_kinds,
            dry_run=config.dry_run,
            run_id=context.run.run_id,
        )
        key = f"{plan}:{outcome}"
        tally[key] = tally.get(key, 0) + 1
    with engine.begin() as conn:
        batches = db.batches_of_items(conn, item_ids)
        totals = [db.refresh_batch_totals(conn, batch_id) for batch_id in batches]
    context.add_output_metadata(
        {
            "candidates": len(item_ids),
            "dry_run": config.dry_run,
            "outcomes": dg.MetadataValue.json(tally),
            "batches": table_metadata(
                [
                    {
                        "payout date": t.payout_date,
                        "status": t.status,
                        "paid": t.paid_count,
                        "failed": t.failed_count,
                    }
                    for t in totals
                ],
                ["payout date", "status", "paid", "failed"],
            ),
        }
    )


class StripeEventsConfig(dg.Config):
    limit: int = Field(default=500, ge=1, description="Events applied per run at most.")


@dg.op(tags={"workflow": "creator_payouts"}, pool=POOL)
def apply_stripe_events_op(
    context: dg.OpExecutionContext,
    config: StripeEventsConfig,
    database: DatabaseResource,
    stripe_connect: StripeConnectResource,
    alerts: AlertsResource,
    payouts_config: PayoutsConfig,
) -> None:
    engine = database.get_engine()
    client = stripe_connect.get_client(limiter=stripe_limiter(engine, payouts_config))
    report = apply_stripe_events(engine, client, limit=config.limit)
    for alert in report.alerts:
        alerts.send(alert.title, alert.text, severity=alert.severity, fields=alert.fields)
    context.add_output_metadata(
        {
            "applied": report.applied,
            "reversals": report.reversals,
            "accounts_updated": report.accounts,
            "ignored": report.ignored,
            "mismatches": report.mismatches,
            "left_for_later": report.left_for_later,
            "alerts_sent": len(report.alerts),
            "account_event_fresh_hours": payouts_config.account_event_fresh_hours,
        }
    )
