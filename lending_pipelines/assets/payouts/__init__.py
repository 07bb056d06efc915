"""Creator payouts to Stripe Connect (workflow 3 of SPEC.md): the Dagster wiring.

`assets` (eligible_creators ──▶ payout_batch ──[blocking checks]──▶ payout_transfers), `checks`,
`partitions` (payout dates), `ops` (the transfer graph's steps, the retry and Stripe events
ops), `jobs` (jobs and schedules). The work itself is in `lending_pipelines.workflows.payouts`.
"""

from datetime import timedelta

import dagster as dg

from .assets import PAYOUT_ASSETS
from .checks import PAYOUT_CHECKS
from .jobs import PAYOUT_JOBS, PAYOUT_SCHEDULES, STRIPE_EVENTS_JOBS
from .partitions import payout_partitions

# A payout date's assets are materialized between its 02:00 run and 04:00, or they are late.
PAYOUT_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 4 1,15 * *",
    lower_bound_delta=timedelta(hours=2),
    timezone=payout_partitions.timezone,
)

defs = dg.Definitions(
    assets=dg.map_asset_specs(
        lambda spec: spec.replace_attributes(freshness_policy=PAYOUT_FRESHNESS), PAYOUT_ASSETS
    ),
    asset_checks=PAYOUT_CHECKS,
    jobs=[*PAYOUT_JOBS, *STRIPE_EVENTS_JOBS],
    schedules=PAYOUT_SCHEDULES,
)
