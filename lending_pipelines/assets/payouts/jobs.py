"""Payout jobs and schedules: the partitioned payout job, the daily retry, the Stripe events job."""

import dagster as dg

from ...instance import serial_tags
from ...kill_switch import automation_paused
from ...resources.database import DatabaseResource
from .assets import PAYOUT_ASSETS
from .ops import apply_stripe_events_op, retry_failed_payout_items
from .partitions import payout_partitions

RETRY_CRON = "0 6 * * *"
# Run monitoring fails a run still going after this long: a payout date of 100,000 creators at
# the shared Stripe limit (20 requests/s) takes about 1.5 h; applying Stripe events, seconds.
PAYOUT_MAX_RUNTIME_SECONDS = 4 * 3600
EVENTS_MAX_RUNTIME_SECONDS = 10 * 60

creator_payouts_job = dg.define_asset_job(
    "creator_payouts_job",
    selection=dg.AssetSelection.assets(*PAYOUT_ASSETS),
    tags=serial_tags("creator_payouts_job", max_runtime_seconds=PAYOUT_MAX_RUNTIME_SECONDS),
    description="Pay one payout date: eligibility, batch, transfers. A backfill of a missed "
    "date pays it; re-running a date pays nobody twice.",
)


@dg.schedule(
    name="creator_payouts_schedule",
    job=creator_payouts_job,
    cron_schedule=payout_partitions.get_cron_schedule(),
    execution_timezone=payout_partitions.timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="The payout date's partition, at its own 02:00 (built from the partitioned "
    "job's partitions; skips while CRON_ENABLED is off).",
)
def creator_payouts_schedule(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    paused = automation_paused(database)
    if paused:
        return paused
    tick = context.scheduled_execution_time
    key = payout_partitions.get_partition_key_for_timestamp(tick.timestamp())
    return dg.RunRequest(run_key=key, partition_key=key)


@dg.job(
    name="payout_retry_job",
    tags=serial_tags("payout_retry_job"),
    description="Retry failed payout items: same key while the outcome is unknown, a new key "
    "only after Stripe shows no transfer. Final errors stay failed unless listed in config.",
)
def payout_retry_job():
    retry_failed_payout_items()


@dg.schedule(
    name="payout_retry_schedule",
    job=payout_retry_job,
    cron_schedule=RETRY_CRON,
    execution_timezone=payout_partitions.timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily retry of failed payout items (skips while CRON_ENABLED is off).",
)
def payout_retry_schedule(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    return automation_paused(database) or dg.RunRequest(
        run_key=context.scheduled_execution_time.strftime("%Y-%m-%d")
    )


@dg.job(
    name="stripe_events_job",
    tags=serial_tags("stripe_events_job", max_runtime_seconds=EVENTS_MAX_RUNTIME_SECONDS),
    description="Apply stored Stripe events: reversed transfers (confirmed with Stripe first) "
    "and connected-account updates.",
)
def stripe_events_job():
    apply_stripe_events_op.alias("apply_stripe_events")()


PAYOUT_JOBS = [creator_payouts_job, payout_retry_job]
STRIPE_EVENTS_JOBS = [stripe_events_job]
PAYOUT_SCHEDULES = [creator_payouts_schedule, payout_retry_schedule]
