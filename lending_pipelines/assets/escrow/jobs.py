"""Escrow jobs (the daily asset jobs and the Launchpad op jobs) and the two daily schedules."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from ...kill_switch import automation_paused
from ...resources.database import DatabaseResource
from .assets import auto_deductions, escrow_releases
from .common import ACTOR_TAG, DEDUCT_SERIAL, RELEASE_SERIAL
from .ops import dispute_escrow, release_escrow_now, run_auto_deduct_now, run_escrow_auto_release
from .partitions import TIMEZONE

escrow_release_job = dg.define_asset_job(
    "escrow_release_job",
    selection=[escrow_releases],
    tags=RELEASE_SERIAL,
    description="Release the escrows due on a business day (one partition per day).",
)
auto_deduct_job = dg.define_asset_job(
    "auto_deduct_job",
    selection=[auto_deductions],
    tags=DEDUCT_SERIAL,
    description="Auto-deduct from retailer wallets for a business day (one partition per day).",
)


@dg.job(tags=RELEASE_SERIAL, description="Release one held escrow now (Launchpad).")
def release_escrow_now_job():
    release_escrow_now()


@dg.job(tags=RELEASE_SERIAL, description="Run the escrow auto-release for a date (Launchpad).")
def escrow_auto_release_now_job():
    run_escrow_auto_release()


@dg.job(tags=DEDUCT_SERIAL, description="Run the wallet auto-deduct for a date (Launchpad).")
def auto_deduct_now_job():
    run_auto_deduct_now()


@dg.job(tags=RELEASE_SERIAL, description="Mark a held escrow disputed (Launchpad).")
def dispute_escrow_job():
    dispute_escrow()


# --- schedules ------------------------------------------------------------------------------------


def _scheduled_local(context: dg.ScheduleEvaluationContext) -> datetime:
    when = context.scheduled_execution_time or datetime.now(UTC)
    return when.astimezone(ZoneInfo(TIMEZONE))


@dg.schedule(
    name="escrow_auto_release_daily",
    cron_schedule="0 2 * * *",
    execution_timezone=TIMEZONE,
    job=escrow_release_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00: release the escrows due by the end of the day that just ended.",
)
def escrow_auto_release_daily(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    partition = (_scheduled_local(context).date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(
        run_key=f"escrow_releases:{partition}",
        partition_key=partition,
        tags={ACTOR_TAG: "schedule:escrow_auto_release_daily"},
    )


@dg.schedule(
    name="auto_deduct_daily",
    cron_schedule="0 23 * * *",
    execution_timezone=TIMEZONE,
    job=auto_deduct_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="23:00: auto-deduct for the current business day.",
)
def auto_deduct_daily(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    partition = _scheduled_local(context).date().isoformat()
    return dg.RunRequest(
        run_key=f"auto_deductions:{partition}",
        partition_key=partition,
        tags={ACTOR_TAG: "schedule:auto_deduct_daily"},
    )


ESCROW_JOBS = [
    escrow_release_job,
    auto_deduct_job,
    release_escrow_now_job,
    escrow_auto_release_now_job,
    auto_deduct_now_job,
    dispute_escrow_job,
]
ESCROW_SCHEDULES = [escrow_auto_release_daily, auto_deduct_daily]
