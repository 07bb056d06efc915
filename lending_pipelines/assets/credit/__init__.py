"""Retailer credit operations (workflow 2): the Dagster wiring.

`assets` (risk dashboard, guardrails, auto-pause), `reminders`, `orders` (expiry,
follow-ups, failed-order reversal), `insights`, `sensors`, `partitions` (business days in
LENDING_CREDIT_TIMEZONE), `jobs` (jobs and schedules). The runs themselves are in
`lending_pipelines.workflows.credit`.
"""

from datetime import timedelta

import dagster as dg

from .assets import credit_auto_pause, credit_guardrails, credit_risk_dashboard
from .insights import retailer_insights
from .jobs import CREDIT_JOBS, CREDIT_SCHEDULES
from .orders import order_follow_ups, pending_orders
from .partitions import TIMEZONE
from .reminders import payment_reminders
from .sensors import CREDIT_SENSORS

CREDIT_ASSETS = [
    credit_risk_dashboard,
    credit_guardrails,
    credit_auto_pause,
    payment_reminders,
    pending_orders,
    order_follow_ups,
    retailer_insights,
]


def _daily_by(hour: int) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"0 {hour} * * *", lower_bound_delta=timedelta(hours=2), timezone=TIMEZONE
    )


# Each daily run has two hours after its schedule.
CREDIT_FRESHNESS = {
    "credit_risk_dashboard": _daily_by(6),
    "credit_guardrails": _daily_by(6),
    "credit_auto_pause": _daily_by(13),
    "payment_reminders": _daily_by(12),
    "order_follow_ups": _daily_by(16),
    "retailer_insights": _daily_by(5),
    # every 6 hours, with an hour to run
    "pending_orders": dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=7)),
}

defs = dg.Definitions(
    assets=dg.map_asset_specs(
        lambda spec: spec.replace_attributes(
            freshness_policy=CREDIT_FRESHNESS[spec.key.to_user_string()]
        ),
        CREDIT_ASSETS,
    ),
    jobs=CREDIT_JOBS,
    schedules=CREDIT_SCHEDULES,
    sensors=CREDIT_SENSORS,
)
