"""Applies stored Stripe events: when the receiver has stored verified Stripe events nobody
applied yet, launch `stripe_events_job` (unless one is already queued or running). Skips while
CRON_ENABLED is off — the events stay stored and are applied once it is back on."""

import dagster as dg

from ..assets.payouts.jobs import stripe_events_job
from ..db.inbound import waiting_events
from ..kill_switch import automation_paused
from ..resources.database import DatabaseResource
from ..workflows.payouts.stripe_events import PROVIDER
from .in_flight import run_in_flight


@dg.sensor(
    name="stripe_events_sensor",
    job=stripe_events_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches stripe_events_job when verified Stripe events (transfer.reversed, "
    "transfer.updated, account.updated) wait in inbound_events.",
)
def stripe_events_sensor(context: dg.SensorEvaluationContext, database: DatabaseResource):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    with database.connect() as conn:
        waiting, newest = waiting_events(conn, PROVIDER)
    if not waiting:
        return dg.SkipReason("no unapplied Stripe events")
    running = run_in_flight(context, stripe_events_job.name)
    if running:
        return dg.SkipReason(
            f"{waiting} Stripe event(s) waiting; run {running.run_id} is already applying them"
        )
    return dg.RunRequest(
        tags={"lending/newest_event_id": str(newest), "lending/waiting": str(waiting)}
    )


STRIPE_EVENT_SENSORS = [stripe_events_sensor]
