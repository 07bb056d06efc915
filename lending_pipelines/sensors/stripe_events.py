"""Applies stored Stripe events: when the receiver has stored verified Stripe events nobody
applied yet, launch `stripe_events_job` (unless one is already queued or running). Skips while
CRON_ENABLED is off — the events stay stored and are applied once it is back on."""

import dagster as dg
import sqlalchemy as sa

from ..assets.payouts.jobs import stripe_events_job
from ..db.common import inbound_events
from ..kill_switch import automation_paused
from ..resources.database import DatabaseResource
from ..workflows.payouts.stripe_events import PROVIDER

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


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
        waiting, newest = conn.execute(
            sa.select(sa.func.count(), sa.func.max(inbound_events.c.id)).where(
                inbound_events.c.provider == PROVIDER, inbound_events.c.processed_at.is_(None)
            )
        ).one()
    if not waiting:
        return dg.SkipReason("no unapplied Stripe events")
    running = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=stripe_events_job.name, statuses=IN_FLIGHT), limit=1
    )
    if running:
        return dg.SkipReason(
            f"{waiting} Stripe event(s) waiting; run {running[0].run_id} is already applying them"
        )
    return dg.RunRequest(
        tags={"lending/newest_event_id": str(newest), "lending/waiting": str(waiting)}
    )


STRIPE_EVENT_SENSORS = [stripe_events_sensor]
