"""The CRON_ENABLED kill switch as schedules and sensors read it (SPEC: they skip with a reason)."""

import dagster as dg

from .db.flags import flag_enabled
from .resources.database import DatabaseResource
from .settings import get_settings

PAUSED_MESSAGE = "CRON_ENABLED is off (environment or lending.feature_flags)"


def automation_paused(database: DatabaseResource) -> dg.SkipReason | None:
    """A SkipReason while CRON_ENABLED is off, None while automation may run."""
    with database.connect() as conn:
        if flag_enabled(conn, "CRON_ENABLED", get_settings()):
            return None
    return dg.SkipReason(PAUSED_MESSAGE)
