"""The ops of the payout op jobs: the daily retry and the Stripe events."""

import dagster as dg
from pydantic import Field

from ...db import payouts as db
from ...db.payouts import work
from ...resources.alerts import AlertsResource
from ...resources.database import DatabaseResource
from ...resources.payouts_config import PayoutsConfig
from ...resources.stripe_connect import StripeConnectResource
from ...workflows.payouts.processing import (
    retry_item,
)
from ...workflows.payouts.stripe_events import apply_stripe_events
from ..metadata import table_metadata
from .common import POOL, stripe_limiter

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
