"""The daily analytics refresh: one job rebuilding every model, on a schedule."""

from datetime import UTC, datetime

import dagster as dg

from ...instance import serial_tags
from ...kill_switch import automation_paused
from ...resources.database import DatabaseResource
from .assets import analytics_dbt_models
from .manifest import WORKFLOW_TAG

JOB_NAME = "analytics_refresh_job"
REFRESH_CRON = "0 5 * * *"

analytics_refresh_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.assets(analytics_dbt_models),
    tags={**serial_tags(JOB_NAME), **WORKFLOW_TAG},
    description="Rebuild every analytics model (dbt build: models and their tests).",
)


@dg.schedule(
    name="analytics_daily_refresh",
    cron_schedule=REFRESH_CRON,
    execution_timezone="UTC",
    job=analytics_refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="05:00 UTC: rebuild the analytics models after the night's payout, escrow and "
    "auto-deduct runs.",
)
def analytics_daily_refresh(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    paused = automation_paused(database)
    if paused:
        return paused
    day = (context.scheduled_execution_time or datetime.now(UTC)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"{JOB_NAME}:{day}")


ANALYTICS_JOBS = [analytics_refresh_job]
ANALYTICS_SCHEDULES = [analytics_daily_refresh]
