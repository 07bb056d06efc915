"""Escrow auto-release and wallet auto-deduct on the Blnk ledger (workflow 4): the Dagster wiring.

`assets` (escrow_releases, auto_deductions, with their checks evaluated inside, `checks`),
`partitions` (business days), `ops` (Launchpad operations), `jobs` (jobs and schedules). The
runs themselves are in `lending_pipelines.workflows.escrow`.
"""

import dagster as dg

from .assets import ESCROW_ASSETS
from .jobs import ESCROW_JOBS, ESCROW_SCHEDULES

defs = dg.Definitions(assets=ESCROW_ASSETS, jobs=ESCROW_JOBS, schedules=ESCROW_SCHEDULES)
