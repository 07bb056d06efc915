"""The retailer credit workflow's knobs as one resource, visible (and overridable per run) in the
Dagster UI. `resource_defs.build_resources` fills it from LENDING_CREDIT_* variables
(`CreditConfig.from_env`); a bad value stops start-up naming the variable and the value.

WhatsApp templates: every business-initiated message goes out as an approved template
(`ContentSid` + `ContentVariables`), one per message kind; the variables each one receives are
in TEMPLATE_VARIABLES (and the README). The defaults are the dev sandbox's; production sets
the SIDs Twilio gave the approved templates. The credit timezone is not here: partitions and
schedules are built from it when the definitions load (LENDING_CREDIT_TIMEZONE).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import dagster as dg
from pydantic import Field, ValidationError, field_validator

from ..domain.credit_aging import check_bounds

CONTENT_SID = re.compile(r"^HX[0-9a-f]{32}$")

# message kind → the ContentVariables its template uses, in order ("1", "2", ...)
TEMPLATE_VARIABLES: dict[str, tuple[str, ...]] = {
    "credit_paused": ("retailer name", "why credit was paused"),
    "payment_reminder": ("retailer name", "amount due", "due date", "transaction id"),
    "order_follow_up": ("retailer name", "order amount", "pending order id"),
    "order_failed": ("retailer name", "order id", "amount credited back"),
}

# environment variable → field
ENVIRONMENT: dict[str, str] = {
    "LENDING_CREDIT_AGING_BOUNDS": "aging_bounds",
    "LENDING_CREDIT_REMINDER_WINDOW_DAYS": "reminder_window_days",
    "LENDING_CREDIT_PENDING_ORDER_EXPIRY_HOURS": "pending_order_expiry_hours",
    "LENDING_CREDIT_FOLLOW_UP_LOOKBACK_HOURS": "follow_up_lookback_hours",
    "LENDING_CREDIT_INSIGHTS_PERIOD_DAYS": "insights_period_days",
    "LENDING_CREDIT_TEMPLATE_CREDIT_PAUSED": "template_credit_paused",
    "LENDING_CREDIT_TEMPLATE_PAYMENT_REMINDER": "template_payment_reminder",
    "LENDING_CREDIT_TEMPLATE_ORDER_FOLLOW_UP": "template_order_follow_up",
    "LENDING_CREDIT_TEMPLATE_ORDER_FAILED": "template_order_failed",
}


class CreditConfig(dg.ConfigurableResource):
    """Aging ranges, reminder window, order expiry, insight period and WhatsApp templates."""

    aging_bounds: str = Field(
        default="30,60,90",
        description="Upper bounds (days past due) of the aging buckets after `current`, "
        "comma-separated: 30,60,90 → current, 1-30, 31-60, 61-90, 90+.",
    )
    reminder_window_days: int = Field(
        default=3, ge=0, le=60, description="Remind debits due within this many days (or overdue)."
    )
    pending_order_expiry_hours: int = Field(
        default=24, ge=1, le=720, description="A pending order expires this long after creation."
    )
    follow_up_lookback_hours: int = Field(
        default=48,
        ge=1,
        le=720,
        description="Follow up orders that expired at most this long ago (older ones: never).",
    )
    insights_period_days: int = Field(
        default=30, ge=1, le=366, description="Insights cover the days up to the partition day."
    )
    # The defaults are the sandbox's; production sets the ContentSid Twilio approved for each.
    template_credit_paused: str = Field(
        default="HX" + "c1" * 16,
        description="ContentSid of the approved `credit_paused` template (retailer name, "
        "why credit was paused).",
    )
    template_payment_reminder: str = Field(
        default="HX" + "c2" * 16,
        description="ContentSid of the approved `payment_reminder` template (retailer name, "
        "amount due, due date, transaction id).",
    )
    template_order_follow_up: str = Field(
        default="HX" + "c3" * 16,
        description="ContentSid of the approved `order_follow_up` template (retailer name, "
        "order amount, pending order id).",
    )
    template_order_failed: str = Field(
        default="HX" + "c4" * 16,
        description="ContentSid of the approved `order_failed` template (retailer name, order "
        "id, amount credited back).",
    )

    @field_validator("aging_bounds")
    @classmethod
    def _bounds(cls, value: str) -> str:
        try:
            check_bounds([int(part) for part in value.split(",")])
        except ValueError as exc:
            raise ValueError(f"aging_bounds is {value!r}: {exc}") from None
        return value

    @field_validator(
        "template_credit_paused",
        "template_payment_reminder",
        "template_order_follow_up",
        "template_order_failed",
    )
    @classmethod
    def _content_sid(cls, value: str) -> str:
        if not CONTENT_SID.match(value):
            raise ValueError(f"template {value!r} is not a ContentSid ('HX' + 32 hex)")
        return value

    @property
    def bounds(self) -> tuple[int, ...]:
        return check_bounds([int(part) for part in self.aging_bounds.split(",")])

    def template(self, kind: str) -> str:
        if kind not in TEMPLATE_VARIABLES:
            raise KeyError(f"message kind {kind!r}; known: {sorted(TEMPLATE_VARIABLES)}")
        return getattr(self, f"template_{kind}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CreditConfig:
        values = {field: environ[env] for env, field in ENVIRONMENT.items() if environ.get(env)}
        try:
            return cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "?"
            env = next((e for e, f in ENVIRONMENT.items() if f == field), field)
            raise ValueError(f"{env} is {values.get(field)!r}: {error['msg']}") from None
