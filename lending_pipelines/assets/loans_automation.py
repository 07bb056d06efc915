"""Workflow 1 automation: the polling job and schedule (every 10 minutes), the disbursement
retry job and schedule (every 5 minutes), and the job the M-Pesa results sensor launches.

Each job runs one at a time (run tag `lending/serial`, limited to 1 in dagster.yaml). That tag
does not cover a UI "Materialize" of `loan_disbursements`, so every B2C submitter also takes the
database's submitter lock and claims its rows (db/disbursement_attempts.py): overlapping runs of
any kind send at most one B2C per request.
Both schedules skip with a reason while CRON_ENABLED is off.
"""

from collections import Counter

import dagster as dg

from ..crypto import SecretBox
from ..instance import MPESA_POOL, serial_tags
from ..kill_switch import automation_paused
from ..resources.alerts import AlertsResource
from ..resources.database import DatabaseResource
from ..resources.fineract import FineractResource
from ..resources.mpesa import MpesaResource
from ..settings import get_settings
from ..workflows.loans.disbursement import Disburser
from .loans import LOANS_ASSETS

TIMEZONE = get_settings().loans_timezone
POLLING_JOB = "loan_polling_job"
RETRY_JOB = "disbursement_retry_job"
RESULTS_JOB = "mpesa_results_job"

loan_polling_job = dg.define_asset_job(
    POLLING_JOB,
    selection=dg.AssetSelection.assets(*LOANS_ASSETS),
    tags=serial_tags(POLLING_JOB),
    description="Poll every partner's Fineract, track approved loans, submit auto-disbursements.",
)


def _disburser(context: dg.OpExecutionContext, database, fineract, mpesa) -> Disburser:
    settings = get_settings()
    return Disburser(
        database.get_engine(),
        SecretBox.from_settings(settings),
        fineract,
        mpesa,
        settings,
        run_id=context.run_id,
    )


def _metadata(prefix: str, counts: Counter[str]) -> dict[str, int]:
    return {f"{prefix}_{name}": int(count) for name, count in sorted(counts.items())}


@dg.op(
    tags={"lending/workflow": "loans"},
    pool=MPESA_POOL,
    description="Apply stored M-Pesa callbacks as hints (confirmed by a transaction-status "
    "query sent right away) and status answers as outcomes, then record confirmed payments in "
    "Fineract with the M-Pesa transaction id.",
)
def apply_mpesa_results(
    context: dg.OpExecutionContext,
    database: DatabaseResource,
    fineract: FineractResource,
    mpesa: MpesaResource,
    alerts: AlertsResource,
) -> None:
    with _disburser(context, database, fineract, mpesa) as disburser:
        report = disburser.apply_callbacks()
        queried = disburser.reconcile(hinted_only=True)  # confirm what the callbacks claim
        recorded = disburser.record_in_fineract()
    for problem in [*report.alarming, *disburser.alarms]:
        alerts.send("M-Pesa result needs attention", problem, severity="critical")
    for event_id, error in report.errors.items():
        context.log.warning(f"inbound event {event_id}: {error}")
    context.add_output_metadata(
        {
            **_metadata("applied", report.applied),
            "ignored": report.ignored,
            "errors": len(report.errors),
            **_metadata("status_query", queried),
            **_metadata("fineract", recorded),
        }
    )


@dg.job(
    name=RESULTS_JOB,
    tags=serial_tags(RESULTS_JOB),
    description="Launched by mpesa_results_sensor when callbacks are waiting.",
)
def mpesa_results_job() -> None:
    apply_mpesa_results()


@dg.op(
    tags={"lending/workflow": "loans"},
    pool=MPESA_POOL,
    description="Retry known-failed retryable disbursements with a new attempt (backoff, "
    "maximum attempts), reconcile silent ones with a status query, send due pending ones and "
    "record paid ones in Fineract.",
)
def retry_disbursements(
    context: dg.OpExecutionContext,
    database: DatabaseResource,
    fineract: FineractResource,
    mpesa: MpesaResource,
    alerts: AlertsResource,
) -> None:
    with _disburser(context, database, fineract, mpesa) as disburser:
        retried = disburser.retry_failures()
        queried = disburser.reconcile()
        submitted = disburser.submit_due()
        recorded = disburser.record_in_fineract()
    for problem in disburser.alarms:
        alerts.send("M-Pesa disbursement needs attention", problem, severity="critical")
    if retried["stopped"]:
        alerts.send(
            "Disbursements stopped",
            f"{retried['stopped']} disbursement(s) failed after "
            f"{get_settings().disbursement_max_attempts} attempts and will not be retried",
            severity="error",
        )
    context.add_output_metadata(
        {
            **_metadata("retry", retried),
            **_metadata("reconcile", queried),
            **_metadata("submission", submitted),
            **_metadata("fineract", recorded),
        }
    )


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
