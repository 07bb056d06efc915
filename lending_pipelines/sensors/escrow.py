"""Run-failure alerts for the escrow workflow (releases, auto-deduct and their Launchpad jobs).

This sensor does not obey CRON_ENABLED: it moves no money and sends no customer message, and a
failure during an incident (when automation is switched off and people run jobs by hand) is
exactly when operators need to hear about it.
"""

import dagster as dg

from ..assets.escrow import ESCROW_JOBS
from ..resources.alerts import AlertsResource


@dg.run_failure_sensor(
    name="escrow_run_failure_alert",
    monitored_jobs=ESCROW_JOBS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (alerts resource) when an escrow or auto-deduct run fails.",
)
def escrow_run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    alerts.send(
        title=f"Escrow workflow run failed: {run.job_name}",
        text=message,
        severity="error",
        fields={
            "run_id": run.run_id,
            "partition": run.tags.get("dagster/partition", "-"),
            "actor": run.tags.get("lending/actor", "-"),
        },
    )


ESCROW_SENSORS = [escrow_run_failure_alert]
