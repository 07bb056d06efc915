"""Workflow 5: the daily collections assets, partitioned by business day in Asia/Kolkata.

loan_dpd           DPD and bucket of every ACTIVE/LEGAL loan as of the end of the day, one
                   statement for the whole book; bucket changes and a per-bucket summary kept
                   as history; a backfill of many days is one run (single-run policy).
legal_escalations  loans at DPD >= 90 escalated once (ESCALATION_ENABLED).
collector_scores   collections achieved vs assigned per collector and bucket (SCORING_ENABLED).
"""

import dagster as dg

from ...db.collections.book import compute_scores, escalate_to_legal
from ...resources.database import DatabaseResource
from ...workflows.collections.dpd import run_dpd
from ..metadata import table_metadata
from ..platform_tables import COLLECTION_LOANS_TABLE, INSTALLMENTS_TABLE
from .common import GROUP, OWNERS, WORKFLOW_TAGS, run_actor, skipped_metadata
from .partitions import COLLECTION_DAYS, TIMEZONE, partition_days

# Every collections asset is a business day; a backfill of many days is one run.
DAILY = {
    "partitions_def": COLLECTION_DAYS,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "group_name": GROUP,
    "kinds": {"postgres"},
    "owners": OWNERS,
    "tags": WORKFLOW_TAGS,
}


@dg.asset(
    **DAILY,
    deps=[COLLECTION_LOANS_TABLE, INSTALLMENTS_TABLE],
    description="Days past due and bucket of every ACTIVE/LEGAL loan as of the end of the "
    f"business day ({TIMEZONE}); the loans' current DPD is written from the latest day only.",
)
def loan_dpd(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    report = run_dpd(database.get_engine(), partition_days(context), run_id=context.run.run_id)
    rows = [
        {
            "business_date": d.business_date.isoformat(),
            "loans": d.loans,
            "bucket_changes": d.changes,
            **d.buckets,
            "current_book_updated": d.current_book_updated,
        }
        for d in report.days
    ]
    latest = report.days[-1]
    return dg.MaterializeResult(
        metadata={
            "business_dates": len(report.requested),
            "recomputed_later_days": dg.MetadataValue.json(
                [d.isoformat() for d in report.recomputed_later]
            ),
            "loans": latest.loans,
            "loans_by_bucket": dg.MetadataValue.json(latest.buckets),
            "bucket_changes": sum(d.changes for d in report.days),
            "duration_seconds": round(report.duration_seconds, 3),
            "days": table_metadata(
                rows,
                [
                    "business_date",
                    "loans",
                    "bucket_changes",
                    "current",
                    "1-30",
                    "31-60",
                    "61-90",
                    "90+",
                    "current_book_updated",
                ],
            ),  # fmt: skip
        }
    )


@dg.asset(
    **DAILY,
    deps=[loan_dpd],
    description="ACTIVE loans at DPD >= 90 escalated to legal, once per loan ever (record, "
    "status LEGAL, audit). Behind ESCALATION_ENABLED.",
)
def legal_escalations(
    context: dg.AssetExecutionContext, database: DatabaseResource
) -> dg.MaterializeResult:
    if skipped := skipped_metadata(context, database, "ESCALATION_ENABLED", "escalated"):
        return dg.MaterializeResult(metadata=skipped)
    with database.begin() as conn:
        escalated = escalate_to_legal(
            conn,
            actor=run_actor(context.op_execution_context),
            run_id=context.run.run_id,
            reason="DPD >= 90 on the latest business day",
        )
    return dg.MaterializeResult(
        metadata={
            "skipped": False,
            "escalated": len(escalated),
            "escalated_detail": table_metadata(
                [e.__dict__ for e in escalated], ["loan_id", "dpd", "business_date"]
            ),
        }
    )


@dg.asset(
    **DAILY,
    deps=[loan_dpd],
    description="Collections achieved vs assigned per collector and bucket for the business "
    "day. Behind SCORING_ENABLED.",
)
def collector_scores(
    context: dg.AssetExecutionContext, database: DatabaseResource
) -> dg.MaterializeResult:
    if skipped := skipped_metadata(context, database, "SCORING_ENABLED", "scores"):
        return dg.MaterializeResult(metadata=skipped)
    scores = []
    for day in partition_days(context):
        with database.begin() as conn:
            scores = [{**s, "business_date": day.isoformat()} for s in compute_scores(conn, day)]
    columns = ["business_date", "collector_id", "bucket", "assigned_loans", "overdue_minor",
               "collected_minor"]  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "skipped": False,
            "scores": len(scores),
            "collected_minor": sum(s["collected_minor"] for s in scores),
            "latest_day": table_metadata(scores, columns),
        }
    )


COLLECTIONS_ASSETS = [loan_dpd, legal_escalations, collector_scores]
