"""The loans workflow's knobs as one resource, visible (and overridable per run) in the Dagster
UI. `resource_defs.build_resources` fills it from the settings, so the LENDING_* variables keep
working; the assets, checks and ops pass its values to the engines as plain arguments.

The loans timezone of the schedules is read when the definitions load (before any resource
exists); `timezone` here is the business day a confirmed payment is recorded under in Fineract.
Both come from LENDING_LOANS_TIMEZONE.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import Field, field_validator

from ..settings import Settings

_RATES = ("poll_success_rate_warn", "poll_error_rate_fail", "disbursement_success_rate_min")


class LoansConfig(dg.ConfigurableResource):
    """Loan polling and M-Pesa auto-disbursement: how partners are polled, what the checks
    accept, how disbursements are retried and reconciled."""

    poll_concurrency: int = Field(
        ge=1, description="Partners polled at once (LENDING_POLL_CONCURRENCY)."
    )
    poll_timeout_seconds: int = Field(
        ge=1, description="Whole polling budget per partner (LENDING_POLL_TIMEOUT_SECONDS)."
    )
    poll_success_rate_warn: str = Field(
        description="Polling success rate over the last hour below which the check warns, a "
        "decimal in [0, 1] (LENDING_POLL_SUCCESS_RATE_WARN)."
    )
    poll_error_rate_fail: str = Field(
        description="Polling error rate over the last hour above which the check fails, a "
        "decimal in [0, 1] (LENDING_POLL_ERROR_RATE_FAIL)."
    )
    no_new_loan_hours: int = Field(
        ge=1,
        description="Alert when no new loan was tracked this long (LENDING_NO_NEW_LOAN_HOURS).",
    )
    partner_failing_minutes: int = Field(
        ge=1,
        description="Alert when a partner failed every poll for this long "
        "(LENDING_PARTNER_FAILING_MINUTES).",
    )
    disbursement_success_rate_min: str = Field(
        description="Auto-disbursement success rate below which the check fails, a decimal in "
        "[0, 1] (LENDING_DISBURSEMENT_SUCCESS_RATE_MIN)."
    )
    disbursement_stuck_minutes: int = Field(
        ge=1,
        description="A disbursement without a final outcome for this long is reported stuck "
        "(LENDING_DISBURSEMENT_STUCK_MINUTES).",
    )
    disbursement_reconcile_after_minutes: int = Field(
        ge=0,
        description="Submitted/unknown disbursements older than this are reconciled with a "
        "status query (LENDING_DISBURSEMENT_RECONCILE_AFTER_MINUTES).",
    )
    disbursement_max_attempts: int = Field(
        ge=1,
        description="B2C attempts per disbursement before it stops as failed "
        "(LENDING_DISBURSEMENT_MAX_ATTEMPTS).",
    )
    disbursement_backoff_seconds: int = Field(
        ge=1,
        description="Base of the exponential backoff between disbursement attempts "
        "(LENDING_DISBURSEMENT_BACKOFF_SECONDS).",
    )
    disbursement_not_found_gap_minutes: int = Field(
        ge=0,
        description="An attempt M-Pesa reports not found is sent again (same id) only after a "
        "second not-found answer at least this long after the first "
        "(LENDING_DISBURSEMENT_NOT_FOUND_GAP_MINUTES).",
    )
    disbursement_submitter_wait_seconds: int = Field(
        ge=0,
        description="How long a B2C submitter waits for another one to finish before leaving "
        "the due rows to it (LENDING_DISBURSEMENT_SUBMITTER_WAIT_SECONDS).",
    )
    timezone: str = Field(
        description="IANA timezone of the business day payments are recorded under in Fineract "
        "(LENDING_LOANS_TIMEZONE)."
    )

    @field_validator(*_RATES)
    @classmethod
    def _rate(cls, value: str, info) -> str:
        try:
            rate = Decimal(value)
        except InvalidOperation:
            raise ValueError(
                f"{info.field_name} is {value!r}, expected a decimal in [0, 1]"
            ) from None
        if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
            raise ValueError(f"{info.field_name} is {value!r}, expected a decimal in [0, 1]")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone is {value!r}, expected an IANA timezone name") from None
        return value

    def rate(self, name: str) -> Decimal:
        """One of the rate fields as the exact decimal it is (never a float)."""
        if name not in _RATES:
            raise ValueError(f"rate {name!r} is not one of {_RATES}")
        return Decimal(getattr(self, name))

    @classmethod
    def from_settings(cls, settings: Settings) -> LoansConfig:
        return cls(
            poll_concurrency=settings.poll_concurrency,
            poll_timeout_seconds=settings.poll_timeout_seconds,
            poll_success_rate_warn=str(settings.poll_success_rate_warn),
            poll_error_rate_fail=str(settings.poll_error_rate_fail),
            no_new_loan_hours=settings.no_new_loan_hours,
            partner_failing_minutes=settings.partner_failing_minutes,
            disbursement_success_rate_min=str(settings.disbursement_success_rate_min),
            disbursement_stuck_minutes=settings.disbursement_stuck_minutes,
            disbursement_reconcile_after_minutes=settings.disbursement_reconcile_after_minutes,
            disbursement_max_attempts=settings.disbursement_max_attempts,
            disbursement_backoff_seconds=settings.disbursement_backoff_seconds,
            disbursement_not_found_gap_minutes=settings.disbursement_not_found_gap_minutes,
            disbursement_submitter_wait_seconds=settings.disbursement_submitter_wait_seconds,
            timezone=settings.loans_timezone,
        )
