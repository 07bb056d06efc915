"""Collections op jobs' steps: posting a payment file (run by the payment files sensor)."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from ...domain.collections_payments import format_inr
from ...resources.collections_config import CollectionsConfig
from ...resources.database import DatabaseResource
from ...workflows.collections.payment_files import process_payment_file
from ..metadata import markdown_table
from .common import run_actor
from .partitions import TIMEZONE


class PaymentFileConfig(dg.Config):
    path: str = Field(description="The file in the payment inbox.")
    sha256: str = Field(description="Its content hash when the sensor saw it (the run key).")


@dg.op(
    tags={"lending/workflow": "collections"},
    description="Validate a payment file, post its accepted rows and quarantine the others in "
    "one transaction, then move it to processed/ or rejected/.",
)
def post_payment_file(
    context: dg.OpExecutionContext,
    config: PaymentFileConfig,
    database: DatabaseResource,
    collections_config: CollectionsConfig,
) -> dg.Output:
    path = Path(config.path)
    if not path.is_file():
        context.log.info(f"{path} is gone (moved by an earlier run): nothing to do")
        return dg.Output(None, metadata={"status": "gone", "path": str(path)})
    report = process_payment_file(
        database.get_engine(),
        path,
        bounds=collections_config.bounds,
        timezone=TIMEZONE,
        actor=run_actor(context),
        run_id=context.run.run_id,
    )
    if report.sha256 != config.sha256:
        context.log.warning(
            f"{path.name} changed after the sensor saw it: posted as content {report.sha256[:12]}"
        )
    metadata = {
        "file": report.name,
        "sha256": report.sha256,
        "status": report.status,
        "file_id": report.file_id if report.file_id is not None else -1,
        "rows": report.rows,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "accepted_amount": format_inr(report.accepted_minor),
        "accepted_minor": report.accepted_minor,
        "rejected_by_reason": dg.MetadataValue.json(report.rejected_by_reason),
        "overpaid_minor": sum(o["overpaid_minor"] for o in report.overpaid),
        "overpaid_detail": markdown_table(
            report.overpaid, ["payment_id", "utr", "loan_id", "overpaid_minor"]
        ),
        "reason": report.reason or "",
        "moved_to": report.moved_to or "",
        "duration_seconds": round(report.duration_seconds, 3),
    }
    context.log.info(
        f"{report.name}: {report.status}, {report.accepted} accepted "
        f"({format_inr(report.accepted_minor)}), {report.rejected} rejected"
    )
    return dg.Output(None, metadata=metadata)
