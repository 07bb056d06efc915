"""Escrow auto-release and wallet auto-deduct on the Blnk ledger (workflow 4): the Dagster wiring.

`assets` (escrow_releases, auto_deductions, with their checks evaluated inside, `checks`),
`partitions` (business days), `ops` (Launchpad operations), `jobs` (jobs and schedules). The
runs themselves are in `lending_pipelines.workflows.escrow`.
"""

from datetime import timedelta

import dagster as dg

from .assets import ESCROW_ASSETS
from .jobs import ESCROW_JOBS, ESCROW_SCHEDULES
from .partitions import TIMEZONE

# Each daily run has two hours: releases run at 02:00, auto-deduct at 23:00 (escrow timezone).
ESCROW_FRESHNESS = {
    "escrow_releases": dg.FreshnessPolicy.cron(
        deadline_cron="0 4 * * *", lower_bound_delta=timedelta(hours=2), timezone=TIMEZONE
    ),
    "auto_deductions": dg.FreshnessPolicy.cron(
        deadline_cron="0 1 * * *", lower_bound_delta=timedelta(hours=2), timezone=TIMEZONE
    ),
}

defs = dg.Definitions(
    assets=dg.map_asset_specs(
        lambda spec: spec.replace_attributes(
            freshness_policy=ESCROW_FRESHNESS[spec.key.to_user_string()]
        ),
        ESCROW_ASSETS,
    ),
    jobs=ESCROW_JOBS,
    schedules=ESCROW_SCHEDULES,
)
