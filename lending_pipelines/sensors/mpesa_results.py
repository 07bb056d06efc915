"""Applies stored M-Pesa callbacks: when the receiver has stored results nobody applied yet,
launch `mpesa_results_job` (unless one is already queued or running). Skips while CRON_ENABLED
is off — the callbacks stay stored and are applied once it is back on."""

import dagster as dg

from ..assets.loans.jobs import mpesa_results_job
from ..db.inbound import waiting_events
from ..kill_switch import automation_paused
from ..resources.database import DatabaseResource
from .in_flight import run_in_flight


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
        waiting, newest = waiting_events(conn, "mpesa")
    if not waiting:
        return dg.SkipReason("no unapplied M-Pesa callbacks")
    running = run_in_flight(context, mpesa_results_job.name)
    if running:
        return dg.SkipReason(
            f"{waiting} callback(s) waiting; run {running.run_id} is already applying them"
        )
    # No run_key: a new run is wanted whenever callbacks wait and none is being applied.
    return dg.RunRequest(
        tags={"lending/newest_event_id": str(newest), "lending/waiting": str(waiting)}
    )


LOANS_RESULT_SENSORS = [mpesa_results_sensor]
