"""The single Definitions object of the `lending_pipelines` code location."""

from dagster import Definitions

from .assets.analytics import (
    ANALYTICS_ASSETS,
    ANALYTICS_CHECKS,
    ANALYTICS_JOBS,
    ANALYTICS_SCHEDULES,
)
from .assets.escrow import ESCROW_ASSETS, ESCROW_JOBS, ESCROW_SCHEDULES
from .assets.loans import LOANS_ASSET_CHECKS, LOANS_ASSETS
from .assets.loans_automation import LOANS_JOBS, LOANS_SCHEDULES
from .assets.payouts import PAYOUT_ASSETS, PAYOUT_CHECKS, PAYOUT_JOBS, PAYOUT_SCHEDULES
from .assets.payouts_stripe_events import STRIPE_EVENTS_JOBS
from .devmode import prepare_code_location
from .resource_defs import build_resources
from .sensors.mpesa_results import LOANS_RESULT_SENSORS
from .sensors.run_failures import RUN_FAILURE_SENSORS
from .sensors.stripe_events import STRIPE_EVENT_SENSORS
from .sensors.whatsapp_status import WHATSAPP_SENSORS

# Dev mode under plain `dagster dev` / `dg dev`; outside dev mode LENDING_DATABASE_URL is required.
settings = prepare_code_location()

defs = Definitions(
    assets=[*ESCROW_ASSETS, *PAYOUT_ASSETS, *LOANS_ASSETS, *ANALYTICS_ASSETS],
    asset_checks=[*PAYOUT_CHECKS, *LOANS_ASSET_CHECKS, *ANALYTICS_CHECKS],
    jobs=[*ESCROW_JOBS, *PAYOUT_JOBS, *STRIPE_EVENTS_JOBS, *LOANS_JOBS, *ANALYTICS_JOBS],
    schedules=[*ESCROW_SCHEDULES, *PAYOUT_SCHEDULES, *LOANS_SCHEDULES, *ANALYTICS_SCHEDULES],
    sensors=[
        *LOANS_RESULT_SENSORS,
        *RUN_FAILURE_SENSORS,
        *WHATSAPP_SENSORS,
        *STRIPE_EVENT_SENSORS,
    ],
    resources=build_resources(settings),
)
