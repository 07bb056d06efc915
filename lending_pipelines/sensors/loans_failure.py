"""Run-failure alerts for workflow 1 (polling, disbursement retries, M-Pesa results).

Like the escrow workflow's failure sensor, this one does not obey CRON_ENABLED: it moves no
money, and a failure while automation is switched off (people running jobs by hand during an
incident) is exactly when operators need to hear about it.
"""

import dagster as dg

from ..loans_automation import LOANS_JOBS
from ..resources.alerts import AlertsResource


@dg.run_failure_sensor(
    name="loans_run_failure_alert",
    monitored_jobs=LOANS_JOBS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (alerts resource) when a loan polling / disbursement run fails.",
)
def loans_run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    run = context.dagster_run
    alerts.send(
        title=f"Loans workflow run failed: {run.job_name}",
        text=context.failure_event.message or "run failed",
        severity="error",
        fields={"run_id": run.run_id, "job": run.job_name},
    )


LOANS_FAILURE_SENSORS = [loans_run_failure_alert]
