"""Run-failure alerts, one sensor per workflow, all built the same way.

Like every sensor they obey the CRON_ENABLED kill switch (SPEC: all schedules and sensors skip
with a reason); while it is off, failures show in the Dagster UI but are not posted.
"""

import dagster as dg

from ..assets.analytics import ANALYTICS_JOBS
from ..assets.collections.jobs import COLLECTIONS_JOBS
from ..assets.credit.jobs import CREDIT_JOBS
from ..assets.escrow.jobs import ESCROW_JOBS
from ..assets.loans.jobs import LOANS_JOBS
from ..assets.payouts.jobs import PAYOUT_JOBS, STRIPE_EVENTS_JOBS
from ..kill_switch import automation_paused
from ..resources.alerts import AlertsResource
from ..resources.database import DatabaseResource


def workflow_failure_sensor(name: str, workflow: str, jobs: list) -> dg.SensorDefinition:
    """A sensor posting an alert (alerts resource) when any of `jobs` fails."""

    @dg.run_failure_sensor(
        name=name,
        monitored_jobs=jobs,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Alerts (alerts resource) when a {workflow} run fails.",
    )
    def _alert(
        context: dg.RunFailureSensorContext, alerts: AlertsResource, database: DatabaseResource
    ):
        paused = automation_paused(database)
        if paused:
            return paused
        run = context.dagster_run
        partition = run.tags.get("dagster/partition")
        alerts.send(
            title=f"{workflow} run failed: {run.job_name}" + (f" {partition}" if partition else ""),
            text=context.failure_event.message or "run failed",
            severity="error",
            fields={
                "run_id": run.run_id,
                "job": run.job_name,
                "partition": partition or "-",
                "actor": run.tags.get("lending/actor", "-"),
            },
        )
        return None

    return _alert


loans_run_failure_alert = workflow_failure_sensor(
    "loans_run_failure_alert", "Loans workflow", LOANS_JOBS
)
payouts_run_failure_alert = workflow_failure_sensor(
    "payouts_run_failure_alert", "Creator payout", [*PAYOUT_JOBS, *STRIPE_EVENTS_JOBS]
)
escrow_run_failure_alert = workflow_failure_sensor(
    "escrow_run_failure_alert", "Escrow workflow", ESCROW_JOBS
)
credit_run_failure_alert = workflow_failure_sensor(
    "credit_run_failure_alert", "Retailer credit", CREDIT_JOBS
)
collections_run_failure_alert = workflow_failure_sensor(
    "collections_run_failure_alert", "Collections workflow", COLLECTIONS_JOBS
)

analytics_run_failure_alert = workflow_failure_sensor(
    "analytics_run_failure_alert", "Analytics refresh", ANALYTICS_JOBS
)

RUN_FAILURE_SENSORS = [
    loans_run_failure_alert,
    payouts_run_failure_alert,
    escrow_run_failure_alert,
    credit_run_failure_alert,
    collections_run_failure_alert,
    analytics_run_failure_alert,
]
