"""Collections op jobs' steps: posting a payment file (run by the payment files sensor) and the
Launchpad operations."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from ...db.collections import operations as ops_db
from ...domain.collections_payments import format_inr
from ...resources.collections_config import CollectionsConfig
from ...resources.database import DatabaseResource
from ...resources.whatsapp import WhatsAppResource
from ...workflows.collections import operations
from ...workflows.collections.operations import OperationRefused
from ...workflows.collections.payment_files import process_payment_file
from ...workflows.collections.reminders import send_reminders
from ..metadata import table_metadata
from .common import run_actor, skipped_metadata
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
        "overpaid_detail": table_metadata(
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


# --- Launchpad operations (typed config, audited in the same transaction) ----------------------


class ActorConfig(dg.Config):
    actor: str = Field(description="Who asks for this (e-mail); written to the audit log.")
    reason: str = Field(description="Why; written to the audit log.")

    def checked(self) -> tuple[str, str]:
        if not self.actor.strip() or not self.reason.strip():
            raise dg.Failure("actor and reason are required for the audit log")
        return self.actor.strip(), self.reason.strip()


class ReassignCollectorConfig(ActorConfig):
    loan_id: int = Field(description="The loan.")
    collector_id: str = Field(description="The active collector to assign it to.")


class ManualPaymentConfig(ActorConfig):
    loan_id: str = Field(description="The loan (as on a file row).")
    utr: str = Field(description="Bank UTR (NEFT/RTGS) or 12-digit UPI/IMPS reference.")
    amount: str = Field(description="Rupees, plain or Indian notation: 1,00,000.50.")
    paid_on: str = Field(description="YYYY-MM-DD or DD/MM/YYYY, not after today, <= 7 days ago.")


class ReleaseQuarantineConfig(ActorConfig):
    rejection_id: int = Field(description="The quarantined row (payment_rejections.id).")
    utr: str = Field(default="", description="Corrected UTR (empty: keep the row's).")
    loan_id: str = Field(default="", description="Corrected loan id (empty: keep).")
    amount: str = Field(default="", description="Corrected amount (empty: keep).")
    paid_on: str = Field(default="", description="Corrected payment date (empty: keep).")


class CloseLoanConfig(ActorConfig):
    loan_id: int = Field(description="A paid-off ACTIVE or LEGAL loan to close.")


def _refused(error: Exception) -> dg.Failure:
    return dg.Failure(description=str(error), allow_retries=False)


@dg.op(tags={"lending/workflow": "collections"}, description="Reassign a loan's collector.")
def reassign_collector(
    context: dg.OpExecutionContext, config: ReassignCollectorConfig, database: DatabaseResource
) -> dg.Output:
    actor, reason = config.checked()
    try:
        with database.begin() as conn:
            change = ops_db.reassign_collector(
                conn, loan_id=config.loan_id, collector_id=config.collector_id, actor=actor,
                reason=reason, run_id=context.run.run_id,
            )  # fmt: skip
    except OperationRefused as error:
        raise _refused(error) from None
    return dg.Output(None, metadata={"loan_id": config.loan_id, **_flat(change)})


@dg.op(tags={"lending/workflow": "collections"}, description="Close a paid-off loan.")
def close_loan(
    context: dg.OpExecutionContext, config: CloseLoanConfig, database: DatabaseResource
) -> dg.Output:
    actor, reason = config.checked()
    try:
        with database.begin() as conn:
            change = ops_db.close_loan(
                conn, loan_id=config.loan_id, actor=actor, reason=reason,
                run_id=context.run.run_id,
            )  # fmt: skip
    except OperationRefused as error:
        raise _refused(error) from None
    return dg.Output(None, metadata={"loan_id": config.loan_id, **_flat(change)})


@dg.op(
    tags={"lending/workflow": "collections"},
    description="Record a manual payment: the payment-file validation, then posting.",
)
def record_manual_payment(
    context: dg.OpExecutionContext,
    config: ManualPaymentConfig,
    database: DatabaseResource,
    collections_config: CollectionsConfig,
) -> dg.Output:
    actor, reason = config.checked()
    raw = {"utr": config.utr, "loan_id": config.loan_id, "amount": config.amount,
           "paid_on": config.paid_on}  # fmt: skip
    outcome = operations.record_manual_payment(
        database.get_engine(), raw, timezone=TIMEZONE, bounds=collections_config.bounds,
        actor=actor, reason=reason, run_id=context.run.run_id,
    )  # fmt: skip
    if outcome.rejected is not None:
        raise dg.Failure(
            description=f"manual payment rejected and quarantined: {outcome.rejected.message}",
            allow_retries=False,
        )
    return dg.Output(
        None,
        metadata={"payment_id": outcome.payment_id, "overpaid_minor": outcome.overpaid_minor},
    )


@dg.op(
    tags={"lending/workflow": "collections"},
    description="Release a quarantined payment row after correcting it, validated again.",
)
def release_from_quarantine(
    context: dg.OpExecutionContext,
    config: ReleaseQuarantineConfig,
    database: DatabaseResource,
    collections_config: CollectionsConfig,
) -> dg.Output:
    actor, reason = config.checked()
    corrections = {"utr": config.utr, "loan_id": config.loan_id, "amount": config.amount,
                   "paid_on": config.paid_on}  # fmt: skip
    try:
        outcome = operations.release_from_quarantine(
            database.get_engine(), config.rejection_id, corrections, timezone=TIMEZONE,
            bounds=collections_config.bounds, actor=actor, reason=reason,
            run_id=context.run.run_id,
        )  # fmt: skip
    except OperationRefused as error:
        raise _refused(error) from None
    return dg.Output(
        None,
        metadata={
            "rejection_id": config.rejection_id,
            "payment_id": outcome.payment_id,
            "overpaid_minor": outcome.overpaid_minor,
        },
    )


def _flat(change: dict) -> dict:
    return {f"{when}_{k}": str(v) for when, values in change.items() for k, v in values.items()}


@dg.op(
    tags={"lending/workflow": "collections"},
    description="WhatsApp reminders to delinquent borrowers within the contact hours in their "
    "timezone, at most one per loan per day, the template by bucket. Behind REMINDERS_ENABLED.",
)
def send_borrower_reminders(
    context: dg.OpExecutionContext,
    database: DatabaseResource,
    whatsapp: WhatsAppResource,
    collections_config: CollectionsConfig,
) -> dg.Output:
    if skipped := skipped_metadata(context, database, "REMINDERS_ENABLED", "sent"):
        return dg.Output(None, metadata=skipped)
    with whatsapp.get_client() as client:
        report = send_reminders(
            database.get_engine(),
            client,
            now=datetime.now(UTC),
            start_hour=collections_config.reminder_start_hour,
            end_hour=collections_config.reminder_end_hour,
            templates=collections_config.reminder_templates,
        )
    context.log.info(report.summary)
    metadata = {
        "skipped": False,
        "reason": report.summary,
        "sent": sum(report.sent.values()),
        "sent_by_bucket": dg.MetadataValue.json(dict(report.sent)),
        "not_sent": len(report.failed),
        "already_attempted": report.already_attempted,
        "outside_contact_hours": report.outside_hours,
        "not_sent_detail": table_metadata(report.failed, ["loan_id", "status", "error"]),
        "duration_seconds": round(report.duration_seconds, 3),
    }
    return dg.Output(None, metadata=metadata)
