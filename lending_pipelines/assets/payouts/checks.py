"""The checks of `payout_transfers` (the blocking checks of `payout_batch` are in its spec)."""

import dagster as dg
import sqlalchemy as sa

from ...db import payouts as db
from ...resources.alerts import AlertsResource
from ...resources.database import DatabaseResource
from .assets import payout_transfers
from .common import money
from .partitions import payout_date_of


def _checked_batch(context: dg.AssetCheckExecutionContext, conn: sa.Connection):
    """The batch of the run's payout date (the checks run inside the partitioned payout runs);
    run on their own, the latest batch."""
    if context.has_partition_key:
        return db.get_batch(conn, payout_date_of(context.partition_key))
    return db.latest_batch(conn)


@dg.asset_check(
    asset=payout_transfers,
    description="Every paid item has exactly one withdrawal ledger entry carrying its transfer "
    "id and token amount, and no entry exists for an unpaid item.",
)
def ledger_matches_transfers(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource
) -> dg.AssetCheckResult:
    with database.connect() as conn:
        batch = _checked_batch(context, conn)
        mismatches = db.ledger_transfer_mismatches(conn, batch.batch_id) if batch else []
    return dg.AssetCheckResult(
        passed=batch is not None and not mismatches,
        metadata={"mismatches": len(mismatches), "examples": "\n".join(mismatches[:20])},
    )


@dg.asset_check(
    asset=payout_transfers,
    description="Every item of the batch is paid; failures are listed with their reasons and "
    "reported to the alerts channel.",
)
def every_item_paid(
    context: dg.AssetCheckExecutionContext, database: DatabaseResource, alerts: AlertsResource
) -> dg.AssetCheckResult:
    with database.connect() as conn:
        batch = _checked_batch(context, conn)
        failures = db.failed_items(conn, batch.batch_id, limit=20) if batch else []
    if batch is None:
        return dg.AssetCheckResult(passed=False, metadata={"reason": "no batch"})
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
                "failed_amount": money(batch.failed_amount_minor, batch.currency),
            },
        )
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "status": batch.status,
            "failed": batch.failed_count,
            "open": batch.pending_count,
            "failed_kinds": ", ".join(sorted({row.error_kind or "?" for row in failures})),
        },
    )


PAYOUT_CHECKS = [ledger_matches_transfers, every_item_paid]
