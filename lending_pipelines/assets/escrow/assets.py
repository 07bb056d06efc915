"""Workflow 4: escrow auto-release and wallet auto-deduct on the Blnk ledger.

Two daily assets partitioned by business day in LENDING_ESCROW_TIMEZONE (Africa/Nairobi):
  escrow_releases  02:00 — held escrows due by the end of the day (and not after "now") are
                   released from the escrow pool to the wholesaler; the schedule runs the day
                   that just ended.
  auto_deductions  23:00 — the day's share of each enabled retailer's debt moves from the
                   wallet to the repayment pool; the schedule runs the current day.
Launchpad jobs (typed config, audited with the actor and reason): release one escrow now, run
either for a date (all three dry_run by default), mark an escrow disputed. Both schedules skip
while CRON_ENABLED is
off; a failed run alerts (sensors/run_failures.py)."""

from datetime import date

import dagster as dg

from ...instance import BLNK_POOL
from ...resources.blnk import BlnkResource
from ...resources.database import DatabaseResource
from ...resources.escrow_config import EscrowConfig
from ...workflows.escrow.auto_deduct import run_auto_deduct
from ...workflows.escrow.release import release_escrows
from ..platform_tables import ESCROWS_TABLE
from .checks import check_releases, check_repayments
from .common import GROUP, OWNERS, RETRY, fail_on_errors, report_metadata, run_actor
from .partitions import ESCROW_DAYS, TIMEZONE, release_cutoff

# --- assets ---------------------------------------------------------------------------------------


@dg.asset(
    partitions_def=ESCROW_DAYS,
    deps=[ESCROWS_TABLE],
    group_name=GROUP,
    kinds={"blnk", "postgres"},
    owners=OWNERS,
    tags={"lending/workflow": "escrow"},
    pool=BLNK_POOL,
    retry_policy=RETRY,
    check_specs=[
        dg.AssetCheckSpec("no_escrow_released_twice", asset="escrow_releases"),
        dg.AssetCheckSpec("released_amounts_match_ledger", asset="escrow_releases"),
    ],
    description="Held escrows due by the end of the business day, released from the escrow "
    "pool to the wholesaler's Blnk balance (reference escrow-release:<escrow id>).",
)
def escrow_releases(
    context: dg.AssetExecutionContext, database: DatabaseResource, blnk: BlnkResource
) -> dg.MaterializeResult:
    business_date = date.fromisoformat(context.partition_key)
    report = release_escrows(
        database.get_engine(),
        blnk.get_client(),
        business_date=business_date,
        cutoff=release_cutoff(business_date),
        actor=run_actor(context.op_execution_context),
        reason=f"auto-release: due by the end of {business_date} ({TIMEZONE})",
        run_id=context.run.run_id,
        dry_run=False,
        log=context.log,
    )
    columns = ["escrow_id", "order_id", "wholesaler_id", "amount", "currency", "recovered"]
    metadata = report_metadata(report, columns)
    fail_on_errors(report, "escrow release", metadata)
    return dg.MaterializeResult(
        metadata=metadata, check_results=check_releases(database, blnk.get_client(), business_date)
    )


@dg.asset(
    partitions_def=ESCROW_DAYS,
    group_name=GROUP,
    kinds={"blnk", "postgres"},
    owners=OWNERS,
    tags={"lending/workflow": "escrow"},
    pool=BLNK_POOL,
    retry_policy=RETRY,
    check_specs=[dg.AssetCheckSpec("repayments_match_ledger_one_to_one", asset="auto_deductions")],
    description="The business day's auto-deduct: a share of each enabled retailer's debt moved "
    "from the wallet to the repayment pool (reference auto-deduct:<retailer>:<date>), capped "
    "by the daily maximum and the minimum wallet balance.",
)
def auto_deductions(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    blnk: BlnkResource,
    escrow_config: EscrowConfig,
) -> dg.MaterializeResult:
    business_date = date.fromisoformat(context.partition_key)
    report = run_auto_deduct(
        database.get_engine(),
        blnk.get_client(),
        wallet_currency=escrow_config.wallet_currency,
        default_percentage=escrow_config.default_percentage,
        default_minimum=escrow_config.min_wallet_balance_minor,
        business_date=business_date,
        actor=run_actor(context.op_execution_context),
        run_id=context.run.run_id,
        dry_run=False,
        log=context.log,
    )
    columns = ["retailer_id", "amount", "currency", "limited_by", "recovered"]
    metadata = {
        **report_metadata(report, columns),
        "retailers_deducted": len(report.moved),
    }
    fail_on_errors(report, "auto-deduct", metadata)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=check_repayments(database, blnk.get_client(), business_date),
    )


ESCROW_ASSETS = [escrow_releases, auto_deductions]
