"""Workflow 1 automation: the polling job and schedule (every 10 minutes), the disbursement
retry job and schedule (every 5 minutes), and the job the M-Pesa results sensor launches.

Each job runs one at a time (run tag `lending/serial`, limited to 1 in dagster.yaml). That tag
does not cover a UI "Materialize" of `loan_disbursements`, so every B2C submitter also takes the
database's submitter lock and claims its rows (db/disbursement_attempts.py): overlapping runs of
any kind send at most one B2C per request.
Both schedules skip with a reason while CRON_ENABLED is off.
"""

import dagster as dg

from ...instance import serial_tags
from ...kill_switch import automation_paused
from ...resources.database import DatabaseResource
from .assets import LOANS_ASSETS
from .common import POLLING_JOB, RESULTS_JOB, RETRY_JOB, TIMEZONE
from .ops import apply_mpesa_results, retry_disbursements

# Run monitoring fails a run still going after this long: a polling run must end before the
# next 10-minute tick; a results run applies stored callbacks (seconds of work).
POLLING_MAX_RUNTIME_SECONDS = 9 * 60
RESULTS_MAX_RUNTIME_SECONDS = 10 * 60

loan_polling_job = dg.define_asset_job(
    POLLING_JOB,
    selection=dg.AssetSelection.assets(*LOANS_ASSETS),
    tags=serial_tags(POLLING_JOB, max_runtime_seconds=POLLING_MAX_RUNTIME_SECONDS),
    description="Poll every partner's Fineract, track approved loans, submit auto-disbursements.",
)


@dg.job(
    name=RESULTS_JOB,
    tags=serial_tags(RESULTS_JOB, max_runtime_seconds=RESULTS_MAX_RUNTIME_SECONDS),
    description="Launched by mpesa_results_sensor when callbacks are waiting.",
)
def mpesa_results_job() -> None:
    apply_mpesa_results()


@dg.job(
    name=RETRY_JOB,
    tags=serial_tags(RETRY_JOB),
    description="Every 5 minutes: retries, reconciliation, pending submissions, Fineract records.",
)
def disbursement_retry_job() -> None:
    retry_disbursements()


def _run_key(context: dg.ScheduleEvaluationContext, job: str) -> str | None:
    when = context.scheduled_execution_time
    return f"{job}:{when.isoformat()}" if when else None


@dg.schedule(
    name="loan_polling_every_10_minutes",
    cron_schedule="*/10 * * * *",
    execution_timezone=TIMEZONE,
    job=loan_polling_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Poll partners for approved loans and submit auto-disbursements.",
)
def loan_polling_schedule(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    return automation_paused(database) or dg.RunRequest(run_key=_run_key(context, POLLING_JOB))


@dg.schedule(
    name="disbursement_retry_every_5_minutes",
    cron_schedule="*/5 * * * *",
    execution_timezone=TIMEZONE,
    job=disbursement_retry_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Retry, reconcile and settle disbursements.",
)
def disbursement_retry_schedule(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    return automation_paused(database) or dg.RunRequest(run_key=_run_key(context, RETRY_JOB))


LOANS_JOBS = [loan_polling_job, disbursement_retry_job, mpesa_results_job]
LOANS_SCHEDULES = [loan_polling_schedule, disbursement_retry_schedule]
