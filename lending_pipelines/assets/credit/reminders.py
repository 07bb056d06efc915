"""payment_reminders (10:00, behind REMINDERS_ENABLED): one WhatsApp template per debit due
soon or overdue, at most one per debit per day, stamped in the same transaction as its outbox
row. Only the current business day sends: a past partition reports why it sent nothing."""

from datetime import date

import dagster as dg

from ...db.flags import flag_enabled
from ...resources.credit_config import CreditConfig
from ...resources.database import DatabaseResource
from ...resources.whatsapp import WhatsAppResource
from ...settings import get_settings
from ...workflows.credit.reminders import send_reminders
from ..metadata import table_metadata
from ..platform_tables import CREDIT_TRANSACTIONS_TABLE, RETAILERS_TABLE
from .common import GROUP, OWNERS, RETRY, WORKFLOW_TAG, fail_on_failed_messages
from .partitions import CREDIT_DAYS, TIMEZONE, today

REMINDERS_OFF = "REMINDERS_ENABLED is off (environment or lending.feature_flags)"


def reminders_off(database: DatabaseResource) -> str | None:
    with database.connect() as conn:
        return None if flag_enabled(conn, "REMINDERS_ENABLED", get_settings()) else REMINDERS_OFF


@dg.asset(
    partitions_def=CREDIT_DAYS,
    deps=[RETAILERS_TABLE, CREDIT_TRANSACTIONS_TABLE],
    group_name=GROUP,
    kinds={"postgres", "twilio"},
    owners=OWNERS,
    tags=WORKFLOW_TAG,
    retry_policy=RETRY,
    description="Payment reminders over WhatsApp for debits due within the reminder window or "
    "overdue: at most one per debit per local day (reminder_sent_at, reminder_count).",
)
def payment_reminders(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    whatsapp: WhatsAppResource,
    credit_config: CreditConfig,
) -> dg.MaterializeResult:
    business_date = date.fromisoformat(context.partition_key)
    skipped = reminders_off(database)
    if skipped is None and business_date != today():
        skipped = f"reminders are sent on their day only; {business_date} is not today ({TIMEZONE})"
    if skipped is not None:
        context.log.info(f"payment reminders {business_date}: {skipped}")
        return dg.MaterializeResult(
            metadata={"business_date": business_date.isoformat(), "skipped": skipped}
        )
    with whatsapp.get_client() as client:
        report = send_reminders(
            database.get_engine(),
            client,
            business_date=business_date,
            tz=TIMEZONE,
            window_days=credit_config.reminder_window_days,
            content_sid=credit_config.template("payment_reminder"),
        )
    metadata = {
        "business_date": business_date.isoformat(),
        "window_days": credit_config.reminder_window_days,
        "reminders_queued": report.queued,
        "reminded": table_metadata(report.reminded, ["transaction_id", "owed", "due_date"]),
        **report.delivery.as_metadata(),
    }
    fail_on_failed_messages("payment_reminders", report.delivery.failed, metadata)
    return dg.MaterializeResult(metadata=metadata)
