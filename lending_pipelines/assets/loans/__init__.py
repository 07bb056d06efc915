"""Loan polling and M-Pesa auto-disbursement (workflow 1): the Dagster wiring.

`assets` (loan_tracking ──▶ loan_disbursements), `checks`, `ops` (the results and retry steps),
`jobs` (jobs and schedules), `common` (group, owners, tags, timezone). The work itself is in
`lending_pipelines.workflows.loans`.
"""

import dagster as dg

from .assets import LOANS_ASSETS
from .checks import LOANS_ASSET_CHECKS
from .jobs import LOANS_JOBS, LOANS_SCHEDULES

defs = dg.Definitions(
    assets=LOANS_ASSETS,
    asset_checks=LOANS_ASSET_CHECKS,
    jobs=LOANS_JOBS,
    schedules=LOANS_SCHEDULES,
)
