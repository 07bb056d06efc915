"""What the collections definitions share: group, owners, serial tags, the run's actor, and the
kill-switch check of a step."""

from __future__ import annotations

import dagster as dg

from ...db.flags import flag_enabled
from ...instance import serial_tags
from ...resources.database import DatabaseResource
from ...settings import get_settings

GROUP = "collections"
OWNERS = ["team:collections"]
ACTOR_TAG = "lending/actor"
WORKFLOW_TAGS = {"lending/workflow": "collections"}
DPD_SERIAL = serial_tags("collections_dpd")
PAYMENTS_SERIAL = serial_tags("collections_payments")


def run_actor(context: dg.OpExecutionContext) -> str:
    tags = context.run.tags
    if ACTOR_TAG in tags:
        return tags[ACTOR_TAG]
    if "dagster/schedule_name" in tags:
        return f"schedule:{tags['dagster/schedule_name']}"
    if "dagster/sensor_name" in tags:
        return f"sensor:{tags['dagster/sensor_name']}"
    return f"dagster:{context.run.job_name}"


def switched_off(database: DatabaseResource, flag: str) -> str | None:
    """The reason a step does nothing while its kill switch is off (read at every run)."""
    with database.connect() as conn:
        if flag_enabled(conn, flag, get_settings()):
            return None
    return f"{flag} is off (environment or lending.feature_flags): nothing done"


def skipped_metadata(context, database: DatabaseResource, flag: str, count: str) -> dict | None:
    """The metadata of a step whose kill switch is off (the reason logged too), else None."""
    reason = switched_off(database, flag)
    if reason is None:
        return None
    context.log.info(reason)
    return {"skipped": True, "reason": reason, count: 0}
