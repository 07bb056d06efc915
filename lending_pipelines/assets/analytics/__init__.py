"""Analytics: the dbt models in `dbt/` as Dagster assets (group `analytics`, schema `analytics`).

  staging  one view per operational table (`analytics/stg_lending__<table>`)
  payouts  payout_batch_summary, creator_payout_history
  escrow   escrow_release_daily, auto_deduct_daily
  loans    loan_polling_health_hourly, disbursement_outcomes_daily

`manifest` turns the dbt manifest into specs without importing dbt; `assets` runs `dbt build`
(dagster-dbt imported there, in the analytics run only); `checks` the privacy scan; `jobs` the
daily refresh at 05:00 UTC, after the payout (02:00 UTC), escrow (02:00 / 23:00 Nairobi) and
overnight loan runs, skipped while CRON_ENABLED is off. dbt sources carry the key of the Dagster
asset writing each operational table, so lineage reads partner API -> operational table -> model.
"""

from datetime import timedelta

import dagster as dg

from .assets import PLATFORM_TABLES, analytics_dbt_models
from .checks import ANALYTICS_CHECKS
from .jobs import ANALYTICS_JOBS, ANALYTICS_SCHEDULES

# Rebuilt once a day: stale when the 05:00 UTC refresh has not landed within two hours.
ANALYTICS_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 7 * * *", lower_bound_delta=timedelta(hours=2), timezone="UTC"
)

defs = dg.Definitions(
    assets=[
        *dg.map_asset_specs(
            lambda spec: spec.replace_attributes(freshness_policy=ANALYTICS_FRESHNESS),
            [analytics_dbt_models],
        ),
        *PLATFORM_TABLES,
    ],
    asset_checks=ANALYTICS_CHECKS,
    jobs=ANALYTICS_JOBS,
    schedules=ANALYTICS_SCHEDULES,
)

__all__ = ["ANALYTICS_JOBS", "PLATFORM_TABLES", "analytics_dbt_models", "defs"]
