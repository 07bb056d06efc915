"""Applies stored M-Pesa callbacks: when the receiver has stored results nobody applied yet,
launch `mpesa_results_job` (unless one is already queued or running). Skips while CRON_ENABLED
is off — the callbacks stay stored and are applied once it is back on."""

import dagster as dg
import sqlalchemy as sa

from ..assets.loans_automation import mpesa_results_job
from ..db.common import inbound_events
from ..kill_switch import automation_paused
from ..resources.database import DatabaseResource

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(
    name="mpesa_results_sensor",
    job=mpesa_results_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches mpesa_results_job when M-Pesa callbacks wait in inbound_events.",
)
def mpesa_results_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    with database.begin() as conn:
        waiting, newest = conn.execute(
            sa.select(sa.func.count(), sa.func.max(inbound_events.c.id)).where(
                inbound_events.c.provider == "mpesa", inbound_events.c.processed_at.is_(None)
            )
        ).one()
    if not waiting:
        return dg.SkipReason("no unapplied M-Pesa callbacks")
    running = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=mpesa_results_job.name, statuses=IN_FLIGHT), limit=1
    )
    if running:
        return dg.SkipReason(
            f"{waiting} callback(s) waiting; run {running[0].run_id} is already applying them"
        )
    # No run_key: a new run is wanted whenever callbacks wait and none is being applied.
    return dg.RunRequest(
        tags={"lending/newest_event_id": str(newest), "lending/waiting": str(waiting)}
    )


LOANS_RESULT_SENSORS = [mpesa_results_sensor]
