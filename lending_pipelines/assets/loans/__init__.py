"""Loan polling and M-Pesa auto-disbursement (workflow 1): the Dagster wiring.

`assets` (loan_tracking ──▶ loan_disbursements), `checks`, `ops` (the results and retry steps),
`jobs` (jobs and schedules), `common` (group, owners, tags, timezone). The work itself is in
`lending_pipelines.workflows.loans`.
"""

from datetime import timedelta

import dagster as dg

from .assets import LOANS_ASSETS
from .checks import LOANS_ASSET_CHECKS
from .jobs import LOANS_JOBS, LOANS_SCHEDULES

# Polled every 10 minutes: two missed ticks warn, three fail.
LOANS_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=20)
)

defs = dg.Definitions(
    assets=dg.map_asset_specs(
        lambda spec: spec.replace_attributes(freshness_policy=LOANS_FRESHNESS), LOANS_ASSETS
    ),
    asset_checks=LOANS_ASSET_CHECKS,
    jobs=LOANS_JOBS,
    schedules=LOANS_SCHEDULES,
)
