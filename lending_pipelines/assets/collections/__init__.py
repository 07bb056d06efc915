"""Loan collections CRM (workflow 5): the Dagster wiring.

`assets` (loan_dpd, legal_escalations, collector_scores), `partitions` (business days in
Asia/Kolkata), `jobs` (the daily job and schedule). The runs themselves are in
`lending_pipelines.workflows.collections`.
"""

from datetime import timedelta

import dagster as dg

from .assets import COLLECTIONS_ASSETS
from .jobs import COLLECTIONS_JOBS, COLLECTIONS_SCHEDULES
from .partitions import TIMEZONE

# The daily run starts at 00:30 IST; two hours later the day should be computed.
DPD_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="30 2 * * *", lower_bound_delta=timedelta(hours=2), timezone=TIMEZONE
)

defs = dg.Definitions(
    assets=dg.map_asset_specs(
        lambda spec: (
            spec.replace_attributes(freshness_policy=DPD_FRESHNESS)
            if spec.key.to_user_string() == "loan_dpd"
            else spec
        ),
        COLLECTIONS_ASSETS,
    ),
    jobs=COLLECTIONS_JOBS,
    schedules=COLLECTIONS_SCHEDULES,
)
