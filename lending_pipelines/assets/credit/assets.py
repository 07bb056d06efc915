"""Workflow 2: retailer credit operations, the daily assets (group `credit`, credit timezone).

  credit_risk_dashboard  outstanding by aging bucket system-wide and per retailer, at-risk
                         retailers (metadata tables; the bucket totals reconcile with total
                         outstanding — an asset check)
  credit_guardrails      04:00: pause retailers breaking a guardrail, audit, notify once
  credit_auto_pause      11:00: the same rule again after the morning's payments and orders
The other assets are in `orders.py` (reminders, expiry, follow-ups) and `insights.py`.
"""

from datetime import date

import dagster as dg

from ...db.credit.exposure import aging_rows, outstanding_by_bucket
from ...domain.credit_aging import bucket_labels
from ...resources.credit_config import CreditConfig
from ...resources.database import DatabaseResource
from ...resources.whatsapp import WhatsAppResource
from ...workflows.credit.guardrails import run_guardrails
from ..metadata import table_metadata
from ..platform_tables import CREDIT_ACCOUNTS_TABLE, CREDIT_TRANSACTIONS_TABLE, RETAILERS_TABLE
from .checks import buckets_reconcile, one_pause_notice_per_retailer_and_day
from .common import GROUP, OWNERS, RETRY, WORKFLOW_TAG, fail_on_failed_messages, run_actor
from .partitions import CREDIT_DAYS, TIMEZONE

AT_RISK_BUCKETS_FROM = 2  # the third bucket (31-60 by default) and older


@dg.asset(
    partitions_def=CREDIT_DAYS,
    deps=[RETAILERS_TABLE, CREDIT_ACCOUNTS_TABLE, CREDIT_TRANSACTIONS_TABLE],
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    tags=WORKFLOW_TAG,
    check_specs=[
        dg.AssetCheckSpec("aging_buckets_reconcile_with_outstanding", asset="credit_risk_dashboard")
    ],
    description="Outstanding credit by aging bucket (current, 1-30, 31-60, 61-90, 90+ days "
    "past due) system-wide and per retailer, and the at-risk retailers, on the business day.",
)
def credit_risk_dashboard(
    context: dg.AssetExecutionContext, database: DatabaseResource, credit_config: CreditConfig
) -> dg.MaterializeResult:
    business_date = date.fromisoformat(context.partition_key)
    bounds = credit_config.bounds
    labels = list(bucket_labels(bounds))
    with database.begin() as conn:
        buckets = outstanding_by_bucket(conn, business_date=business_date, bounds=bounds)
        per_retailer = sorted(
            (row._asdict() for row in aging_rows(conn, business_date=business_date, bounds=bounds)),
            key=lambda row: (row["retailer_id"], labels.index(row["bucket"])),
        )
        check = buckets_reconcile(conn, buckets)
    risky = set(labels[AT_RISK_BUCKETS_FROM:])
    at_risk: dict[str, dict] = {}
    for row in per_retailer:
        if row["bucket"] in risky:
            entry = at_risk.setdefault(
                row["retailer_id"],
                {"retailer_id": row["retailer_id"], "amount": 0, "oldest_bucket": row["bucket"]},
            )
            entry["amount"] += row["amount"]
            if labels.index(row["bucket"]) > labels.index(entry["oldest_bucket"]):
                entry["oldest_bucket"] = row["bucket"]
    ranked = sorted(at_risk.values(), key=lambda r: (-r["amount"], r["retailer_id"]))
    return dg.MaterializeResult(
        metadata={
            "business_date": business_date.isoformat(),
            "timezone": TIMEZONE,
            "total_outstanding": sum(row["amount"] for row in buckets),
            "retailers_with_outstanding": len({row["retailer_id"] for row in per_retailer}),
            "at_risk_retailers": len(ranked),
            "by_bucket": table_metadata(
                buckets, ["bucket", "currency", "retailers", "debits", "amount"]
            ),
            "at_risk": table_metadata(ranked, ["retailer_id", "amount", "oldest_bucket"]),
            "per_retailer": table_metadata(per_retailer, ["retailer_id", "bucket", "amount"]),
        },
        check_results=[check],
    )


def _pause_asset(name: str, action: str, when: str):
    @dg.asset(
        name=name,
        partitions_def=CREDIT_DAYS,
        deps=[RETAILERS_TABLE, CREDIT_ACCOUNTS_TABLE, CREDIT_TRANSACTIONS_TABLE],
        group_name=GROUP,
        kinds={"postgres", "twilio"},
        owners=OWNERS,
        tags=WORKFLOW_TAG,
        retry_policy=RETRY,
        check_specs=[dg.AssetCheckSpec("no_retailer_paused_twice_a_day", asset=name)],
        description=f"{when}: ACTIVE retailers whose oldest unpaid debit is older than their "
        "max_outstanding_days or whose outstanding exceeds their limit are PAUSED (reason, "
        "audit entry, one WhatsApp template per pause).",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        database: DatabaseResource,
        whatsapp: WhatsAppResource,
        credit_config: CreditConfig,
    ) -> dg.MaterializeResult:
        business_date = date.fromisoformat(context.partition_key)
        with whatsapp.get_client() as client:
            report = run_guardrails(
                database.get_engine(),
                client,
                business_date=business_date,
                tz=TIMEZONE,
                actor=run_actor(context.op_execution_context),
                action=action,
                run_id=context.run.run_id,
                content_sid=credit_config.template("credit_paused"),
            )
        with database.connect() as conn:
            check = one_pause_notice_per_retailer_and_day(conn)
        metadata = {
            "business_date": business_date.isoformat(),
            "active_retailers_evaluated": report.active_before,
            "paused": len(report.paused),
            "paused_detail": table_metadata(report.paused, ["retailer_id", "reason"]),
            **report.delivery.as_metadata(),
        }
        fail_on_failed_messages(name, report.delivery.failed, metadata)
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return _asset


credit_guardrails = _pause_asset("credit_guardrails", "credit.guardrails_pause", "04:00")
credit_auto_pause = _pause_asset("credit_auto_pause", "credit.auto_pause", "11:00")
