"""What the escrow definitions share: group, owners, serial tags, retry policy, the run's actor,
the run report as metadata, and failing a run whose transfers failed."""

import dagster as dg

from ...instance import serial_tags
from ...workflows.escrow.report import RunReport
from ..metadata import table_metadata

GROUP = "escrow"
OWNERS = ["team:finance-ops"]
ACTOR_TAG = "lending/actor"
RELEASE_SERIAL = serial_tags("escrow_release")
DEDUCT_SERIAL = serial_tags("auto_deduct")
RETRY = dg.RetryPolicy(
    max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def run_actor(context: dg.OpExecutionContext) -> str:
    tags = context.run.tags
    if ACTOR_TAG in tags:
        return tags[ACTOR_TAG]
    if "dagster/schedule_name" in tags:
        return f"schedule:{tags['dagster/schedule_name']}"
    return f"dagster:{context.run.job_name}"


def report_metadata(report: RunReport, moved_columns: list[str]) -> dict:
    skipped = [{"id": s.entity_id, "reason": s.reason} for s in report.skipped]
    failed = [
        {"id": f.entity_id, "error": f.error, "retryable": f.retryable} for f in report.failed
    ]
    return {
        "business_date": report.business_date.isoformat(),
        "dry_run": report.dry_run,
        "moved": len(report.moved),
        "amount_by_currency": dg.MetadataValue.json(report.amount_by_currency),
        "recovered_from_ledger": report.recovered,
        "skipped": len(report.skipped),
        "skipped_by_reason": dg.MetadataValue.json(report.skipped_by_reason),
        "failed": len(report.failed),
        "awaiting_ledger": len(report.awaiting),
        "duration_seconds": round(report.duration_seconds, 3),
        "moved_detail": table_metadata(report.moved, moved_columns),
        "skipped_detail": table_metadata(skipped, ["id", "reason"]),
        "failed_detail": table_metadata(failed, ["id", "error", "retryable"]),
        "planned_detail": table_metadata(report.planned, moved_columns),
    }


def fail_on_errors(report: RunReport, what: str, metadata: dict) -> None:
    """A transfer that failed fails the run (after every other one was done and recorded)."""
    if report.failed:
        raise dg.Failure(
            description=(
                f"{what} {report.business_date}: {len(report.failed)} transfer(s) failed, "
                f"{len(report.moved)} succeeded"
            ),
            metadata=metadata,
            allow_retries=report.any_retryable_failure,
        )
