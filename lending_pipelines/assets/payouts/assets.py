"""Creator payouts to Stripe Connect (workflow 3 of SPEC.md).

Every payout date (02:00 on the 1st and 15th, UTC by default) is one partition of three assets:

    eligible_creators ──▶ payout_batch ──[blocking checks]──▶ payout_transfers

* `eligible_creators` refreshes the Connect account state of the creators who would otherwise
  qualify, then evaluates every creator in one SQL statement (db.payouts.evaluate_eligibility).
* `payout_batch` freezes that evaluation into one batch, one item per creator (idempotency key
  `payouts-<date>:<creator>`) and chunks of LENDING_PAYOUT_CHUNK_SIZE; re-materializing creates
  nothing new. Blocking checks: the batch total is the sum of its items, no creator twice.
* `payout_transfers` runs LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS chunk workers at once, threads of
  its step (workflows.payouts.workers); each claims chunks with FOR UPDATE SKIP LOCKED and pays
  their items one transaction each, paced by a request-rate limit shared through PostgreSQL by
  every worker and run.

`payout_retry_job` (daily) retries failed items: the same idempotency key while the outcome is
unknown, a new key only after Stripe shows no transfer for the item (domain.payouts.retry_plan)."""

import time
from dataclasses import asdict
from datetime import date

import dagster as dg
import sqlalchemy as sa

from ...db import payouts as db
from ...db.payouts import work
from ...domain import payouts as rules
from ...partners.stripe import StripeConnectError
from ...resources.database import DatabaseResource
from ...resources.payouts_config import PayoutsConfig
from ...resources.stripe_connect import StripeConnectResource
from ...workflows.payouts.processing import (
    STOP_RUN_KINDS,
    DuplicateTransferError,
    refresh_connect_accounts,
)
from ...workflows.payouts.workers import pay_batch_with_workers
from ..platform_tables import CREATORS_TABLE
from .common import (
    GROUP,
    OWNERS,
    POOL,
    RETRY,
    money,
    outcomes_table,
    stripe_limiter,
    transfers_metadata,
)
from .partitions import payout_date_of, payout_partitions

# --- eligible_creators -------------------------------------------------------------------------


@dg.asset(
    partitions_def=payout_partitions,
    deps=[CREATORS_TABLE],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"postgres", "stripe"},
    tags={"workflow": "creator_payouts"},
    pool=POOL,
    retry_policy=RETRY,
    description="Creators to pay on this payout date and how much (one SQL evaluation after "
    "refreshing candidates' Connect accounts); the reason for everyone else.",
)
def eligible_creators(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    stripe_connect: StripeConnectResource,
    payouts_config: PayoutsConfig,
) -> dg.MaterializeResult:
    payout_date = payout_date_of(context.partition_key)
    as_of = context.partition_time_window.start
    engine = database.get_engine()
    started = time.monotonic()
    with engine.connect() as conn:
        batch = db.get_batch(conn, payout_date)
        frozen = db.stored_evaluation(conn, payout_date) if batch else None
    if batch is not None and frozen is not None:
        context.log.info(f"batch for {payout_date} exists; its evaluation is frozen")
        return dg.MaterializeResult(
            metadata={
                "payout_date": payout_date.isoformat(),
                "frozen": True,
                "eligible_creators": frozen.eligible.creators,
                "outcomes": outcomes_table(frozen, batch.currency),
            }
        )
    try:
        refresh = refresh_connect_accounts(
            engine,
            stripe_connect.get_client(limiter=stripe_limiter(engine, payouts_config)),
            payout_date=payout_date,
            as_of=as_of,
            minimum_tokens=payouts_config.minimum_tokens,
            event_fresh_hours=payouts_config.account_event_fresh_hours,
        )
    except StripeConnectError as exc:
        if exc.kind in STOP_RUN_KINDS:  # bad credentials: a retry of the step cannot help
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        raise
    with engine.begin() as conn:
        summary = db.evaluate_eligibility(
            conn,
            payout_date=payout_date,
            as_of=as_of,
            minimum_tokens=payouts_config.minimum_tokens,
            token_rate=payouts_config.rate,
            currency=payouts_config.currency,
            run_id=context.run.run_id,
        )
    eligible = summary.eligible
    return dg.MaterializeResult(
        metadata={
            "payout_date": payout_date.isoformat(),
            "as_of": as_of.isoformat(),
            "frozen": False,
            "eligible_creators": eligible.creators,
            "payout_tokens": eligible.tokens,
            "payout_amount_minor": eligible.amount_minor,
            "payout_amount": money(eligible.amount_minor, payouts_config.currency),
            "outcomes": outcomes_table(summary, payouts_config.currency),
            **refresh,
            "seconds": round(time.monotonic() - started, 3),
        }
    )


# --- payout_batch ------------------------------------------------------------------------------


@dg.asset(
    partitions_def=payout_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"postgres"},
    tags={"workflow": "creator_payouts"},
    deps=[eligible_creators],
    retry_policy=RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            "batch_total_matches_items",
            asset="payout_batch",
            blocking=True,
            description="The batch's stored total and count equal the sum over its items.",
        ),
        dg.AssetCheckSpec(
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
def payout_batch(
    context: dg.AssetExecutionContext, database: DatabaseResource, payouts_config: PayoutsConfig
) -> dg.MaterializeResult:
    payout_date = payout_date_of(context.partition_key)
    with database.begin() as conn:
        creation = db.create_batch(
            conn,
            payout_date=payout_date,
            chunk_size=payouts_config.chunk_size,
            run_id=context.run.run_id,
        )
        invariants = db.batch_invariants(conn, creation.totals.batch_id)
        chunks = db.open_chunk_count(conn, creation.totals.batch_id)
    totals = creation.totals
    return dg.MaterializeResult(
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
            "total_amount": money(totals.total_amount_minor, totals.currency),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="batch_total_matches_items",
                passed=invariants.totals_match,
                metadata={
                    "stored_total_minor": invariants.stored_total_minor,
                    "items_total_minor": invariants.items_total_minor,
                    "stored_item_count": invariants.stored_item_count,
                    "item_count": invariants.item_count,
                },
            ),
            dg.AssetCheckResult(
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


@dg.asset(
    partitions_def=payout_partitions,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"stripe", "postgres"},
    tags={"workflow": "creator_payouts"},
    deps=[payout_batch],
    pool=POOL,
    retry_policy=RETRY,
    description="Stripe Connect transfers for every item of the batch, each recorded with its "
    "withdrawal ledger entry in the same transaction: LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS "
    "chunk workers at once, each claiming chunks with FOR UPDATE SKIP LOCKED.",
)
def payout_transfers(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    stripe_connect: StripeConnectResource,
    payouts_config: PayoutsConfig,
) -> dg.MaterializeResult:
    payout_date = payout_date_of(context.partition_key)
    engine = database.get_engine()
    batch_id, open_chunks = _open_batch(context, engine, payout_date)
    workers = max(1, min(payouts_config.max_concurrent_chunks, open_chunks))
    context.log.info(f"batch {payout_date}: {open_chunks} open chunks, {workers} workers")
    try:
        reports = pay_batch_with_workers(
            engine,
            batch_id,
            lambda: stripe_connect.get_client(limiter=stripe_limiter(engine, payouts_config)),
            workers=workers,
            run_id=context.run.run_id,
            lease_seconds=payouts_config.lease_seconds,
        )
    except DuplicateTransferError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except StripeConnectError as exc:
        if exc.kind in STOP_RUN_KINDS:  # bad credentials: retrying the step cannot help
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        raise
    for number, report in enumerate(reports):
        context.log.info(f"worker {number}: {asdict(report)}")
    return dg.MaterializeResult(metadata=transfers_metadata(engine, payout_date, reports))


def _open_batch(
    context: dg.AssetExecutionContext, engine: sa.Engine, payout_date: date
) -> tuple[int, int]:
    """The date's batch and its open chunks, after freeing the chunk leases of runs Dagster
    reports ended (a worker killed with its run, SIGKILL or OOM, left its chunk leased)."""
    with engine.begin() as conn:
        batch = db.get_batch(conn, payout_date)
        if batch is None:
            raise db.PayoutStateError(f"payout date {payout_date}: no batch; run payout_batch")
        ended = [
            run_id
            for run_id in work.leasing_runs(conn, batch.batch_id)
            if run_id != context.run.run_id
            and (run := context.instance.get_run_by_id(run_id)) is not None
            and run.is_finished
        ]
        released = work.release_leases_of_runs(conn, batch.batch_id, ended)
        open_chunks = db.open_chunk_count(conn, batch.batch_id)
    if released:
        context.log.warning(f"released {released} chunk lease(s) of ended runs {ended}")
    return batch.batch_id, open_chunks


PAYOUT_ASSETS = [eligible_creators, payout_batch, payout_transfers]
