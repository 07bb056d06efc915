"""Collections jobs and the daily schedule."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from ...kill_switch import automation_paused
from ...resources.database import DatabaseResource
from .assets import collector_scores, legal_escalations, loan_dpd
from .common import ACTOR_TAG, DPD_SERIAL, PAYMENTS_SERIAL
from .ops import (
    close_loan,
    post_payment_file,
    reassign_collector,
    record_manual_payment,
    release_from_quarantine,
    send_borrower_reminders,
)
from .partitions import TIMEZONE

collections_daily_job = dg.define_asset_job(
    "collections_daily_job",
    selection=[loan_dpd, legal_escalations, collector_scores],
    tags=DPD_SERIAL,
    description="DPD for a business day, then escalation and collector scores.",
)


@dg.job(
    tags=PAYMENTS_SERIAL,
    description="Post one payment file from the inbox (started by payment_files_sensor).",
)
def payment_file_job():
    post_payment_file()


@dg.job(description="Reassign a loan's collector (Launchpad, audited).")
def reassign_collector_job():
    reassign_collector()


@dg.job(tags=PAYMENTS_SERIAL, description="Record a manual payment (Launchpad, audited).")
def manual_payment_job():
    record_manual_payment()


@dg.job(
    tags=PAYMENTS_SERIAL,
    description="Release a quarantined payment row after correction (Launchpad, audited).",
)
def release_from_quarantine_job():
    release_from_quarantine()


@dg.job(description="Close a paid-off loan (Launchpad, audited).")
def close_loan_job():
    close_loan()


@dg.job(description="WhatsApp reminders to delinquent borrowers (hourly, contact hours only).")
def collection_reminders_job():
    send_borrower_reminders()


@dg.schedule(
    name="collection_reminders_hourly",
    cron_schedule="5 * * * *",
    execution_timezone=TIMEZONE,
    job=collection_reminders_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: reminders to borrowers whose local time is within the contact "
    "hours (08:00-19:00 by default); a tick outside them sends nothing and says so.",
)
def collection_reminders_hourly(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    when = context.scheduled_execution_time or datetime.now(UTC)
    return dg.RunRequest(
        run_key=f"collection_reminders:{when.astimezone(UTC).isoformat(timespec='minutes')}",
        tags={ACTOR_TAG: "schedule:collection_reminders_hourly"},
    )


@dg.schedule(
    name="collections_dpd_daily",
    cron_schedule="30 0 * * *",
    execution_timezone=TIMEZONE,
    job=collections_daily_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="00:30 IST: DPD as of the end of the business day that just ended.",
)
def collections_dpd_daily(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    when = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(ZoneInfo(TIMEZONE))
    partition = (when.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(
        run_key=f"collections_daily:{partition}",
        partition_key=partition,
        tags={ACTOR_TAG: "schedule:collections_dpd_daily"},
    )


COLLECTIONS_JOBS = [
    collections_daily_job,
    payment_file_job,
    reassign_collector_job,
    manual_payment_job,
    release_from_quarantine_job,
    close_loan_job,
    collection_reminders_job,
]
COLLECTIONS_SCHEDULES = [collections_dpd_daily, collection_reminders_hourly]
