"""Creator payouts to Stripe Connect (workflow 3 of SPEC.md): the Dagster wiring.

`assets` (eligible_creators ──▶ payout_batch ──[blocking checks]──▶ payout_transfers), `checks`,
`partitions` (payout dates), `ops` (the transfer graph's steps, the retry and Stripe events
ops), `jobs` (jobs and schedules). The work itself is in `lending_pipelines.workflows.payouts`.
"""

import dagster as dg

from .assets import PAYOUT_ASSETS
from .checks import PAYOUT_CHECKS
from .jobs import PAYOUT_JOBS, PAYOUT_SCHEDULES, STRIPE_EVENTS_JOBS

defs = dg.Definitions(
    assets=PAYOUT_ASSETS,
    asset_checks=PAYOUT_CHECKS,
    jobs=[*PAYOUT_JOBS, *STRIPE_EVENTS_JOBS],
    schedules=PAYOUT_SCHEDULES,
)
