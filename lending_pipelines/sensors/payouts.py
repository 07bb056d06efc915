"""Run-failure alerts for creator payouts (the payout job and the daily retry job).

Like the escrow alert sensor it does not obey CRON_ENABLED: it moves no money, and a failed
payout run while automation is switched off (people running backfills by hand) is exactly when
operators need to hear about it.
"""

import dagster as dg

from ..assets.payouts import PAYOUT_JOBS
from ..resources.alerts import AlertsResource


@dg.run_failure_sensor(
    name="payouts_run_failure_alert",
    monitored_jobs=PAYOUT_JOBS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (alerts resource) when a creator payout or payout-retry run fails.",
)
def payouts_run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
    run = context.dagster_run
    partition = run.tags.get("dagster/partition", "-")
    alerts.send(
        title=f"Creator payout run failed: {run.job_name} {partition}",
        text=context.failure_event.message or "run failed",
        severity="error",
        fields={"run_id": run.run_id, "job": run.job_name, "payout_date": partition},
    )


PAYOUT_SENSORS = [payouts_run_failure_alert]
