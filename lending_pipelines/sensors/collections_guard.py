"""Watches the collections financial guard's refusal counters: every minute, refusals the
database counted since the last tick are recorded (`guard_refusals`) and alerted as one incident
(workflows/collections/guard.py). The work is two small statements, so it runs in the sensor.
Skips while CRON_ENABLED is off; the counters keep counting meanwhile, nothing is lost."""

from __future__ import annotations

import dagster as dg

from ..kill_switch import automation_paused
from ..resources.alerts import AlertsResource
from ..resources.database import DatabaseResource
from ..settings import get_settings
from ..workflows.collections.guard import report_guard_refusals
from ..workflows.incidents import reminder_interval


@dg.sensor(
    name="collections_guard_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records and alerts UPDATEs of the loan book the financial guard refused.",
)
def collections_guard_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource, alerts: AlertsResource
):
    paused = automation_paused(database)
    if paused is not None:
        return paused
    found = report_guard_refusals(
        database.get_engine(),
        alerts.send,
        remind_every=reminder_interval(get_settings().alert_reminder_minutes),
    )
    if not found:
        return dg.SkipReason("no refused change to the loan book since the last tick")
    return dg.SkipReason(
        "recorded and alerted refused changes: "
        + ", ".join(f"{f.table}.{f.column} x{f.refusals}" for f in found)
    )


GUARD_SENSORS = [collections_guard_sensor]
