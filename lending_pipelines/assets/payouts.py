"""Creator payouts to Stripe Connect (workflow 3 of SPEC.md).

Every payout date (02:00 on the 1st and 15th, UTC by default) is one partition of three assets:

    eligible_creators ──▶ payout_batch ──[blocking checks]──▶ payout_transfers

* `eligible_creators` refreshes the Connect account state of the creators who would otherwise
  qualify, then evaluates every creator in one SQL statement (db.payouts.evaluate_eligibility).
* `payout_batch` freezes that evaluation into one batch, one item per creator (idempotency key
  `payouts-<date>:<creator>`) and chunks of LENDING_PAYOUT_CHUNK_SIZE; re-materializing creates
  nothing new. Blocking checks: the batch total is the sum of its items, no creator twice.
* `payout_transfers` is a graph: a planner fans out at most LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS
  workers (so a run has a handful of steps whatever the creator count); each worker claims
  chunks with FOR UPDATE SKIP LOCKED and pays their items one transaction each, paced by a
  request-rate limit shared through PostgreSQL by every worker process and run.

`payout_retry_job` (daily) retries failed items: the same idempotency key while the outcome is
unknown, a new key only after Stripe shows no transfer for the item (domain.payouts.retry_plan).
"""

import time
from dataclasses import asdict
from datetime import date

import sqlalchemy as sa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetSelection,
    Backoff,
    Config,
    DefaultScheduleStatus,
    DynamicOut,
    DynamicOutput,
    Failure,
    In,
    Jitter,
    MaterializeResult,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    RetryPolicy,
    RunRequest,
    ScheduleEvaluationContext,
    TimeWindowPartitionsDefinition,
    asset,
    asset_check,
    define_asset_job,
    graph_asset,
    job,
    op,
    schedule,
)
from pydantic import Field

from ..db import payouts as db
from ..db.payouts import work
from ..db.rate_limit import PostgresRateLimiter
from ..domain import payouts as rules
from ..domain.money import format_minor
from ..instance import serial_tags
from ..kill_switch import automation_paused
from ..partners.stripe import StripeConnectError
from ..resources.alerts import AlertsResource
from ..resources.database import DatabaseResource
from ..resources.stripe_connect import StripeConnectResource
from ..settings import get_settings
from .metadata import markdown_table
from .payouts_processing import (
    STOP_RUN_KINDS,
    DuplicateTransferError,
    refresh_connect_accounts,
    retry_item,
    run_chunk_worker,
)

GROUP = "payouts"
OWNERS = ["team:payments"]
PAYOUTS_CRON = "0 2 1,15 * *"
PAYOUTS_START = "2025-01-01"
RETRY_CRON = "0 6 * * *"
RATE_LIMIT_NAME = "stripe"
POOL = "stripe_payouts"
RETRY = RetryPolicy(max_retries=2, delay=10, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)

payout_partitions = TimeWindowPartitionsDefinition(
    cron_schedule=PAYOUTS_CRON,
    start=PAYOUTS_START,
    fmt="%Y-%m-%d",
    timezone=get_settings().payouts_timezone,
    # The partition of a payout date starts at its 02:00 run (not at the previous date's), so
    # the schedule tick of the 15th runs partition "<month>-15".
    end_offset=1,
)


def _payout_date(partition_key: str) -> date:
    return date.fromisoformat(partition_key)


def _limiter(engine: sa.Engine) -> PostgresRateLimiter:
    return PostgresRateLimiter(engine, RATE_LIMIT_NAME, get_settings().stripe_requests_per_second)


def _money(amount_minor: int, currency: str) -> str:
    return format_minor(amount_minor, currency)


def _outcomes_table(summary: db.EligibilitySummary, currency: str) -> MetadataValue:
    rows = [
        {
            "outcome": outcome,
            "creators": counts.creators,
            "tokens": counts.tokens,
            "amount": _money(counts.amount_minor, currency),
        }
        for outcome, counts in sorted(summary.outcomes.items())
    ]
    return markdown_table(rows, ["outcome", "creators", "tokens", "amount"])


# --- eligible_creators -------------------------------------------------------------------------


@asset(
    partitions_def=payout_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"postgres", "stripe"},
    tags={"workflow": "creator_payouts"},
    retry_policy=RETRY,
    description="Creators to pay on this payout date and how much (one SQL evaluation after "
    "refreshing candidates' Connect accounts); the reason for everyone else.",
)
def eligible_creators(
    context: AssetExecutionContext,
    database: DatabaseResource,
    stripe_connect: StripeConnectResource,
) -> MaterializeResult:
    settings = get_settings()
    payout_date = _payout_date(context.partition_key)
    as_of = context.partition_time_window.start
    engine = database.get_engine()
    started = time.monotonic()
    with engine.connect() as conn:
        batch = db.get_batch(conn, payout_date)
        frozen = db.stored_evaluation(conn, payout_date) if batch else None
    if batch is not None and frozen is not None:
        context.log.info(f"batch for {payout_date} exists; its evaluation is frozen")
        return MaterializeResult(
            metadata={
                "payout_date": payout_date.isoformat(),
                "frozen": True,
                "eligible_creators": frozen.eligible.creators,
                "outcomes": _outcomes_table(frozen, batch.currency),
            }
        )
    try:
        refresh = refresh_connect_accounts(
            engine,
            stripe_connect.get_client(limiter=_limiter(engine)),
            payout_date=payout_date,
            as_of=as_of,
            minimum_tokens=settings.payout_minimum_tokens,
            event_fresh_hours=settings.stripe_account_event_fresh_hours,
        )
    except StripeConnectError as exc:
        if exc.kind in STOP_RUN_KINDS:  # bad credentials: a retry of the step cannot help
            raise Failure(description=str(exc), allow_retries=False) from exc
        raise
    with engine.begin() as conn:
        summary = db.evaluate_eligibility(
            conn,
            payout_date=payout_date,
            as_of=as_of,
            minimum_tokens=settings.payout_minimum_tokens,
            token_rate=settings.token_rate,
            currency=settings.payout_currency,
            run_id=context.run_id,
        )
    eligible = summary.eligible
    return MaterializeResult(
        metadata={
            "payout_date": payout_date.isoformat(),
            "as_of": as_of.isoformat(),
            "frozen": False,
            "eligible_creators": eligible.creators,
            "payout_tokens": eligible.tokens,
            "payout_amount_minor": eligible.amount_minor,
            "payout_amount": _money(eligible.amount_minor, settings.payout_currency),
            "outcomes": _outcomes_table(summary, settings.payout_currency),
            **refresh,
            "seconds": round(time.monotonic() - started, 3),
        }
    )


# --- payout_batch ------------------------------------------------------------------------------


@asset(
    partitions_def=payout_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"postgres"},
    tags={"workflow": "creator_payouts"},
    deps=[eligible_creators],
    retry_policy=RETRY,
    check_specs=[
        AssetCheckSpec(
            "batch_total_matches_items",
            asset="payout_batch",
            blocking=True,
            description="The batch's stored total and count equal the sum over its items.",
        ),
        AssetCheckSpec(
            "no_creator_twice",
            asset="payout_batch",
            blocking=True,
            description="No creator has two items in the batch, and no creator's open items "
            "over every payout date claim more tokens than their ledger balance holds.",
        ),
    ],
    description="The payout batch of this date and its items (one per creator, idempotency key "
    "`payouts-<date>:<creator>`), split into chunks. Creating it twice creates nothing new.",
)
def payout_batch(context: AssetExecutionContext, database: DatabaseResource) -> MaterializeResult:
    settings = get_settings()
    payout_date = _payout_date(context.partition_key)
    with database.begin() as conn:
        creation = db.create_batch(
            conn,
            payout_date=payout_date,
            chunk_size=settings.payout_chunk_size,
            run_id=context.run_id,
        )
        invariants = db.batch_invariants(conn, creation.totals.batch_id)
        chunks = db.open_chunk_count(conn, creation.totals.batch_id)
    totals = creation.totals
    return MaterializeResult(
        metadata={
            "payout_date": payout_date.isoformat(),
            "batch_hash": rules.batch_hash(payout_date),
            "created_now": creation.created,
            "claims_reduced_by_other_dates": creation.claims_reduced,
            "claims_dropped_for_other_dates": creation.claims_dropped,
            "status": totals.status,
            "items": totals.item_count,
            "open_chunks": chunks,
            "total_tokens": totals.total_tokens,
            "total_amount_minor": totals.total_amount_minor,
            "total_amount": _money(totals.total_amount_minor, totals.currency),
        },
        check_results=[
            AssetCheckResult(
                check_name="batch_total_matches_items",
                passed=invariants.totals_match,
                metadata={
                    "stored_total_minor": invariants.stored_total_minor,
                    "items_total_minor": invariants.items_total_minor,
                    "stored_item_count": invariants.stored_item_count,
                    "item_count": invariants.item_count,
                },
            ),
            AssetCheckResult(
                check_name="no_creator_twice",
                passed=invariants.no_creator_twice,
                metadata={
                    "duplicate_creators": str(invariants.duplicate_creators),
                    "overdrawn_across_dates": str(invariants.overdrawn_creators[:50]),
                    "creators_also_open_in_other_batches": len(
                        invariants.creators_in_other_open_batches
                    ),
                },
            ),
        ],
    )


# --- payout_transfers (graph) ----------------------------------------------------------------


@op(
    ins={"batch_ready": In(Nothing)},
    out=DynamicOut(int),
    tags={"workflow": "creator_payouts"},
    description="Fan out one worker per chunk to process at once (at most "
    "LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS), never one step per chunk.",
)
def plan_payout_workers(context: OpExecutionContext, database: DatabaseResource):
    payout_date = _payout_date(context.partition_key)
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
            if run_id != context.run_id
            and (run := context.instance.get_run_by_id(run_id)) is not None
            and run.is_finished
        ]
        released = work.release_leases_of_runs(conn, batch.batch_id, ended)
    if released:
        context.log.warning(f"released {released} chunk lease(s) of ended runs {ended}")
    workers = max(1, min(get_settings().payout_max_concurrent_chunks, open_chunks))
    context.log.info(f"batch {payout_date}: {open_chunks} open chunks, {workers} workers")
    for number in range(workers):
        yield DynamicOutput(number, mapping_key=f"worker_{number}")


@op(
    pool=POOL,
    retry_policy=RETRY,
    tags={"workflow": "creator_payouts"},
    description="Claim chunks (FOR UPDATE SKIP LOCKED) and pay their items, one transaction "
    "per item, under the shared Stripe request-rate limit.",
)
def pay_payout_chunks(
    context: OpExecutionContext,
    worker_no: int,
    database: DatabaseResource,
    stripe_connect: StripeConnectResource,
) -> dict:
    payout_date = _payout_date(context.partition_key)
    engine = database.get_engine()
    with engine.connect() as conn:
        batch = db.get_batch(conn, payout_date)
    if batch is None:
        raise db.PayoutStateError(f"payout date {payout_date}: no batch")
    client = stripe_connect.get_client(limiter=_limiter(engine))
    try:
        report = run_chunk_worker(
            engine,
            batch.batch_id,
            client,
            run_id=context.run_id,
            lease_seconds=get_settings().payout_lease_seconds,
        )
    except DuplicateTransferError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    except StripeConnectError as exc:
        if exc.kind in STOP_RUN_KINDS:  # bad credentials: retrying the step cannot help
            raise Failure(description=str(exc), allow_retries=False) from exc
        raise
    context.log.info(f"worker {worker_no}: {asdict(report)}")
    return asdict(report)


@op(
    out=Out(Nothing),
    tags={"workflow": "creator_payouts"},
    description="Bring the batch's totals and status up to date and report them.",
)
def finalize_payout_batch(
    context: OpExecutionContext, reports: list[dict], database: DatabaseResource
) -> None:
    payout_date = _payout_date(context.partition_key)
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
            "amount": _money(row.amount_minor, totals.currency),
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
            "paid_amount": _money(totals.paid_amount_minor, totals.currency),
            "failed_amount": _money(totals.failed_amount_minor, totals.currency),
            "workers": len(reports),
            "chunks_processed": sum(r["chunks"] for r in reports),
            "transfers_made_this_run": transfers_made,
            "transfers_replayed_this_run": sum(r["replayed"] for r in reports),
            "rate_limited_retries": sum(r["rate_limited_retries"] for r in reports),
            "transfers_per_second": round(transfers_made / seconds, 2) if seconds else 0.0,
            "failures": markdown_table(
                failure_rows, ["creator", "item", "amount", "error", "retryable", "reason"]
            ),
        }
    )


@graph_asset(
    partitions_def=payout_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"stripe", "postgres"},
    tags={"workflow": "creator_payouts"},
    ins={"payout_batch": AssetIn("payout_batch", dagster_type=Nothing)},
    description="Stripe Connect transfers for every item of the batch, each recorded with its "
    "withdrawal ledger entry in the same transaction.",
)
def payout_transfers(payout_batch):
    reports = plan_payout_workers(batch_ready=payout_batch).map(pay_payout_chunks).collect()
    return finalize_payout_batch(reports)


def _checked_batch(context: AssetCheckExecutionContext, conn: sa.Connection):
    """The batch of the run's payout date (the checks run inside the partitioned payout runs);
    run on their own, the latest batch."""
    if context.has_partition_key:
        return db.get_batch(conn, _payout_date(context.partition_key))
    return db.latest_batch(conn)


@asset_check(
    asset=payout_transfers,
    description="Every paid item has exactly one withdrawal ledger entry carrying its transfer "
    "id and token amount, and no entry exists for an unpaid item.",
)
def ledger_matches_transfers(
    context: AssetCheckExecutionContext, database: DatabaseResource
) -> AssetCheckResult:
    with database.connect() as conn:
        batch = _checked_batch(context, conn)
        mismatches = db.ledger_transfer_mismatches(conn, batch.batch_id) if batch else []
    return AssetCheckResult(
        passed=batch is not None and not mismatches,
        metadata={"mismatches": len(mismatches), "examples": "\n".join(mismatches[:20])},
    )


@asset_check(
    asset=payout_transfers,
    description="Every item of the batch is paid; failures are listed with their reasons and "
    "reported to the alerts channel.",
)
def every_item_paid(
    context: AssetCheckExecutionContext, database: DatabaseResource, alerts: AlertsResource
) -> AssetCheckResult:
    with database.connect() as conn:
        batch = _checked_batch(context, conn)
        failures = db.failed_items(conn, batch.batch_id, limit=20) if batch else []
    if batch is None:
        return AssetCheckResult(passed=False, metadata={"reason": "no batch"})
    payout_date = batch.payout_date
    passed = batch.status == "completed"
    if not passed:
        alerts.send(
            f"Creator payouts {payout_date}: {batch.failed_count} failed, "
            f"{batch.pending_count} open",
            "\n".join(
                f"{row.idempotency_key}: {row.error_kind} ({row.error_message})" for row in failures
            )
            or "items are still open",
            severity="warning",
            fields={
                "paid": batch.paid_count,
                "failed_amount": _money(batch.failed_amount_minor, batch.currency),
            },
        )
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "status": batch.status,
            "failed": batch.failed_count,
            "open": batch.pending_count,
            "failed_kinds": ", ".join(sorted({row.error_kind or "?" for row in failures})),
        },
    )


PAYOUT_ASSETS = [eligible_creators, payout_batch, payout_transfers]
PAYOUT_CHECKS = [ledger_matches_transfers, every_item_paid]

creator_payouts_job = define_asset_job(
    "creator_payouts_job",
    selection=AssetSelection.assets(*PAYOUT_ASSETS),
    partitions_def=payout_partitions,
    tags=serial_tags("creator_payouts_job"),
    description="Pay one payout date: eligibility, batch, transfers. A backfill of a missed "
    "date pays it; re-running a date pays nobody twice.",
)


@schedule(
    name="creator_payouts_schedule",
    job=creator_payouts_job,
    cron_schedule=payout_partitions.get_cron_schedule(),
    execution_timezone=payout_partitions.timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description="The payout date's partition, at its own 02:00 (built from the partitioned "
    "job's partitions; skips while CRON_ENABLED is off).",
)
def creator_payouts_schedule(context: ScheduleEvaluationContext, database: DatabaseResource):
    paused = automation_paused(database)
    if paused:
        return paused
    tick = context.scheduled_execution_time
    key = payout_partitions.get_partition_key_for_timestamp(tick.timestamp())
    return RunRequest(run_key=key, partition_key=key)


# --- daily retry ------------------------------------------------------------------------------


class PayoutRetryConfig(Config):
    dry_run: bool = Field(default=False, description="Report the plan, send nothing.")
    retry_final_kinds: list[str] = Field(
        default_factory=list,
        description="Final error kinds to retry anyway once fixed, e.g. balance_insufficient "
        "after a top-up or invalid_account after onboarding (never sent with the old key).",
    )
    max_attempts: int = Field(default=6, ge=1, description="Stripe calls per item at most.")
    limit: int = Field(default=2000, ge=1, description="Items per run at most.")


@op(tags={"workflow": "creator_payouts"}, pool=POOL)
def retry_failed_payout_items(
    context: OpExecutionContext,
    config: PayoutRetryConfig,
    database: DatabaseResource,
    stripe_connect: StripeConnectResource,
) -> None:
    engine = database.get_engine()
    with engine.connect() as conn:
        item_ids = work.retry_candidates(
            conn,
            retry_final_kinds=config.retry_final_kinds,
            max_attempts=config.max_attempts,
            limit=config.limit,
            stuck_after_seconds=get_settings().payout_lease_seconds,
        )
    client = stripe_connect.get_client(limiter=_limiter(engine))
    tally: dict[str, int] = {}
    for item_id in item_ids:
        plan, outcome = retry_item(
            engine,
            item_id,
            client,
            retry_final_kinds=config.retry_final_kinds,
            dry_run=config.dry_run,
            run_id=context.run_id,
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
            "outcomes": MetadataValue.json(tally),
            "batches": markdown_table(
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


@job(
    name="payout_retry_job",
    tags=serial_tags("payout_retry_job"),
    description="Retry failed payout items: same key while the outcome is unknown, a new key "
    "only after Stripe shows no transfer. Final errors stay failed unless listed in config.",
)
def payout_retry_job():
    retry_failed_payout_items()


@schedule(
    name="payout_retry_schedule",
    job=payout_retry_job,
    cron_schedule=RETRY_CRON,
    execution_timezone=payout_partitions.timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Daily retry of failed payout items (skips while CRON_ENABLED is off).",
)
def payout_retry_schedule(context: ScheduleEvaluationContext, database: DatabaseResource):
    return automation_paused(database) or RunRequest(
        run_key=context.scheduled_execution_time.strftime("%Y-%m-%d")
    )


PAYOUT_JOBS = [creator_payouts_job, payout_retry_job]
PAYOUT_SCHEDULES = [creator_payouts_schedule, payout_retry_schedule]
