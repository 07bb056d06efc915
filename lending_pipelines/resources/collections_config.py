"""The collections workflow's knobs as one resource, visible (and overridable per run) in the
Dagster UI. `resource_defs.build_resources` fills it with `from_env`: each knob has a default and
a LENDING_* variable; a bad value stops start-up naming the variable and the value.

The collections timezone (LENDING_COLLECTIONS_TIMEZONE, Asia/Kolkata) is not here: partitions
and schedules are built from it when the definitions load, before any resource exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
from pydantic import Field, model_validator

from ..domain.collections_payments import Bounds
from ..settings import Settings, SettingsError

# variable -> (field, default); the inbox default is LENDING_HOME/inbox/payments.
ENVIRONMENT: dict[str, tuple[str, str | None]] = {
    "LENDING_PAYMENT_INBOX": ("inbox_path", None),
    "LENDING_PAYMENT_BACKDATING_DAYS": ("backdating_days", "7"),
    "LENDING_PAYMENT_MIN_MINOR": ("min_amount_minor", "100"),
    "LENDING_PAYMENT_MAX_MINOR": ("max_amount_minor", "1000000000"),
    "LENDING_REMINDER_START_HOUR": ("reminder_start_hour", "8"),
    "LENDING_REMINDER_END_HOUR": ("reminder_end_hour", "19"),
    "LENDING_REMINDER_TEMPLATE_1_30": ("reminder_template_1_30", None),
    "LENDING_REMINDER_TEMPLATE_31_60": ("reminder_template_31_60", None),
    "LENDING_REMINDER_TEMPLATE_61_90": ("reminder_template_61_90", None),
    "LENDING_REMINDER_TEMPLATE_90_PLUS": ("reminder_template_90_plus", None),
}
_TEXT = {"inbox_path"} | {name for name, _ in ENVIRONMENT.values() if "template" in name}
# Approved WhatsApp templates, one per tone; the defaults are the sandbox's (any HX + 32 hex).
DEFAULT_TEMPLATES = {
    "1-30": "HX" + "1" * 32,  # friendly: "your instalment is overdue"
    "31-60": "HX" + "2" * 32,  # firm: "please pay to avoid charges"
    "61-90": "HX" + "3" * 32,  # urgent: "contact your collector today"
    "90+": "HX" + "9" * 32,  # final notice before legal action
}


class CollectionsConfig(dg.ConfigurableResource):
    """Payment files (inbox, validation bounds) and reminder hours."""

    inbox_path: str = Field(
        description="Folder the payment files are dropped in; processed/ and rejected/ are made "
        "inside it (LENDING_PAYMENT_INBOX, default LENDING_HOME/inbox/payments)."
    )
    backdating_days: int = Field(
        default=7,
        ge=0,
        description="A payment dated more than this many days before the file was received "
        "(IST) is rejected (LENDING_PAYMENT_BACKDATING_DAYS).",
    )
    min_amount_minor: int = Field(
        default=100, ge=1, description="Smallest payment, in paise (LENDING_PAYMENT_MIN_MINOR)."
    )
    max_amount_minor: int = Field(
        default=1_00_00_000_00,
        ge=1,
        description="Largest payment, in paise: ₹1,00,00,000 (LENDING_PAYMENT_MAX_MINOR).",
    )
    reminder_start_hour: int = Field(
        default=8,
        ge=0,
        le=23,
        description="Reminders are sent from this hour, borrower's local time "
        "(LENDING_REMINDER_START_HOUR).",
    )
    reminder_end_hour: int = Field(
        default=19,
        ge=1,
        le=24,
        description="... until this hour, exclusive: the RBI fair-practice window 08:00-19:00 "
        "(LENDING_REMINDER_END_HOUR).",
    )

    reminder_template_1_30: str = Field(
        default=DEFAULT_TEMPLATES["1-30"],
        pattern=r"^HX[0-9a-fA-F]{32}$",
        description="ContentSid of the friendly reminder, DPD 1-30 "
        "(LENDING_REMINDER_TEMPLATE_1_30).",
    )
    reminder_template_31_60: str = Field(
        default=DEFAULT_TEMPLATES["31-60"],
        pattern=r"^HX[0-9a-fA-F]{32}$",
        description="ContentSid of the firm reminder, DPD 31-60 (LENDING_REMINDER_TEMPLATE_31_60).",
    )
    reminder_template_61_90: str = Field(
        default=DEFAULT_TEMPLATES["61-90"],
        pattern=r"^HX[0-9a-fA-F]{32}$",
        description="ContentSid of the urgent reminder, DPD 61-90 "
        "(LENDING_REMINDER_TEMPLATE_61_90).",
    )
    reminder_template_90_plus: str = Field(
        default=DEFAULT_TEMPLATES["90+"],
        pattern=r"^HX[0-9a-fA-F]{32}$",
        description="ContentSid of the final notice, DPD over 90 "
        "(LENDING_REMINDER_TEMPLATE_90_PLUS).",
    )

    @property
    def reminder_templates(self) -> dict[str, str]:
        return {
            "1-30": self.reminder_template_1_30,
            "31-60": self.reminder_template_31_60,
            "61-90": self.reminder_template_61_90,
            "90+": self.reminder_template_90_plus,
        }

    @model_validator(mode="after")
    def _ordered(self) -> CollectionsConfig:
        if self.min_amount_minor > self.max_amount_minor:
            raise ValueError(
                f"min_amount_minor {self.min_amount_minor} is above max_amount_minor "
                f"{self.max_amount_minor}"
            )
        if self.reminder_start_hour >= self.reminder_end_hour:
            raise ValueError(
                f"reminder_start_hour {self.reminder_start_hour} is not before "
                f"reminder_end_hour {self.reminder_end_hour}"
            )
        return self

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.min_amount_minor, self.max_amount_minor, self.backdating_days)

    @property
    def inbox(self) -> Path:
        return Path(self.inbox_path)

    @classmethod
    def from_env(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> CollectionsConfig:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for variable, (name, default) in ENVIRONMENT.items():
            raw = env.get(variable, "").strip() or default
            if raw is None:
                continue
            if name in _TEXT:
                values[name] = raw
                continue
            try:
                values[name] = int(raw)
            except ValueError:
                raise SettingsError(f"{variable} is {raw!r}, expected an integer") from None
        values.setdefault("inbox_path", str(settings.home / "inbox" / "payments"))
        try:
            return cls(**values)
        except Exception as error:  # pydantic's ValidationError names the field
            names = ", ".join(f"{v}={env.get(v)!r}" for v in ENVIRONMENT if env.get(v))
            raise SettingsError(f"collections settings ({names or 'defaults'}): {error}") from None
