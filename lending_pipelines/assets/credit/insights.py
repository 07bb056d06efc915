"""retailer_insights (03:00, daily partition): per-retailer statistics for the period ending
on the business day and a short friendly message, one row per retailer and day; re-running a
partition recomputes that day."""

from datetime import date

import dagster as dg

from ...resources.credit_config import CreditConfig
from ...resources.database import DatabaseResource
from ...workflows.credit.insights import regenerate_insights
from ..metadata import table_metadata
from ..platform_tables import (
    CREDIT_ACCOUNTS_TABLE,
    CREDIT_TRANSACTIONS_TABLE,
    ORDERS_TABLE,
    RETAILERS_TABLE,
)
from .common import GROUP, OWNERS, RETRY, WORKFLOW_TAG
from .partitions import CREDIT_DAYS, TIMEZONE


@dg.asset(
    partitions_def=CREDIT_DAYS,
    deps=[RETAILERS_TABLE, CREDIT_ACCOUNTS_TABLE, ORDERS_TABLE, CREDIT_TRANSACTIONS_TABLE],
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    tags=WORKFLOW_TAG,
    retry_policy=RETRY,
    description="Per ACTIVE retailer, over the period ending on the business day: orders and "
    "spend, average order value, top products, on-time repayment rate, credit utilisation "
    "and a friendly message (lending.retailer_insights).",
)
def retailer_insights(
    context: dg.AssetExecutionContext, database: DatabaseResource, credit_config: CreditConfig
) -> dg.MaterializeResult:
    business_date = date.fromisoformat(context.partition_key)
    report = regenerate_insights(
        database.get_engine(),
        business_date=business_date,
        period_days=credit_config.insights_period_days,
        tz=TIMEZONE,
        run_id=context.run.run_id,
    )
    sample = sorted(report.rows, key=lambda r: -r["spend"])[:20]
    return dg.MaterializeResult(
        metadata={
            "period_start": report.period_start.isoformat(),
            "period_end": report.period_end.isoformat(),
            "retailers": len(report.rows),
            "retailers_with_orders": report.with_orders,
            "top_spenders": table_metadata(
                sample, ["retailer_id", "orders_count", "spend", "on_time_rate", "message"]
            ),
        }
    )
