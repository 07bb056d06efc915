"""The single Definitions object of the `lending_pipelines` code location: each workflow's
`dg.Definitions` merged, plus the sensors and the resources every job can ask for.

Executors, chosen by measurement (bench/runs.py): a step subprocess re-imports this module
(10+ s on a 2-core machine), which dwarfed the work of a polling run. So every job executes in
the run process (`in_process_executor`, the default below); a crash there ends the run and the
next run reconciles from the stored intents, as after a crashed step process. The payout
step's chunk workers pay in parallel as threads (workflows/payouts/workers.py).
"""

import dagster as dg

from .assets import analytics, collections, credit, escrow, loans, payouts
from .devmode import prepare_code_location
from .resource_defs import build_resources
from .sensors.collections_guard import GUARD_SENSORS
from .sensors.mpesa_results import LOANS_RESULT_SENSORS
from .sensors.payment_files import PAYMENT_FILE_SENSORS
from .sensors.run_failures import RUN_FAILURE_SENSORS
from .sensors.stripe_events import STRIPE_EVENT_SENSORS
from .sensors.whatsapp_status import WHATSAPP_SENSORS

# Dev mode under plain `dagster dev` / `dg dev`; outside dev mode LENDING_DATABASE_URL is required.
settings = prepare_code_location()

# One Definitions at module scope (Dagster's autodiscovery refuses several): the parts are
# built inside the merge.
defs = dg.Definitions.merge(
    credit.defs,
    escrow.defs,
    collections.defs,
    payouts.defs,
    loans.defs,
    analytics.defs,
    dg.Definitions(
        sensors=[
            *LOANS_RESULT_SENSORS,
            *RUN_FAILURE_SENSORS,
            *WHATSAPP_SENSORS,
            *STRIPE_EVENT_SENSORS,
            *PAYMENT_FILE_SENSORS,
            *GUARD_SENSORS,
        ],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    ),
)
