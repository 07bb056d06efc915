"""The creator payouts workflow's knobs as one resource, visible (and overridable per run) in the
Dagster UI. `resource_defs.build_resources` fills it from the settings, so the LENDING_* variables
keep working; the assets and ops pass its values to the engines as plain arguments.

The payout timezone is not here: the partitions and schedules are built from it when the
definitions load, before any resource exists (LENDING_PAYOUTS_TIMEZONE).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import dagster as dg
from pydantic import Field, field_validator

from ..settings import Settings


class PayoutsConfig(dg.ConfigurableResource):
    """Creator payouts: money per token, who qualifies, how the transfers are paced."""

    currency: str = Field(description="Currency creators are paid in (LENDING_PAYOUT_CURRENCY).")
    token_rate: str = Field(
        description="Money per token in `currency` major units, a decimal > 0 (LENDING_TOKEN_RATE)."
    )
    minimum_tokens: int = Field(
        ge=1, description="Minimum available balance to be paid (LENDING_PAYOUT_MINIMUM_TOKENS)."
    )
    chunk_size: int = Field(ge=1, description="Payout items per chunk (LENDING_PAYOUT_CHUNK_SIZE).")
    max_concurrent_chunks: int = Field(
        ge=1, description="Chunks processed at once (LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS)."
    )
    lease_seconds: int = Field(
        ge=30,
        description="How long a payout worker holds a chunk without progress; after it, another "
        "run or the retry job takes over the chunk's items (LENDING_PAYOUT_LEASE_SECONDS).",
    )
    account_event_fresh_hours: int = Field(
        ge=0,
        description="A Connect account state from a verified account.updated event younger than "
        "this is used without asking Stripe again (0: always ask) "
        "(LENDING_STRIPE_ACCOUNT_EVENT_FRESH_HOURS).",
    )
    stripe_requests_per_second: int = Field(
        ge=1,
        description="Stripe request-rate limit shared by every payout worker and run "
        "(LENDING_STRIPE_REQUESTS_PER_SECOND).",
    )

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha() or not value.isupper():
            raise ValueError(f"currency is {value!r}, expected a three-letter ISO 4217 code")
        return value

    @field_validator("token_rate")
    @classmethod
    def _positive_decimal(cls, value: str) -> str:
        try:
            rate = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"token_rate is {value!r}, expected a decimal > 0") from None
        if not rate.is_finite() or rate <= 0:
            raise ValueError(f"token_rate is {value!r}, expected a decimal > 0")
        return value

    @property
    def rate(self) -> Decimal:
        """`token_rate` as the exact decimal it is (never a float)."""
        return Decimal(self.token_rate)

    @classmethod
    def from_settings(cls, settings: Settings) -> PayoutsConfig:
        return cls(
            currency=settings.payout_currency,
            token_rate=str(settings.token_rate),
            minimum_tokens=settings.payout_minimum_tokens,
            chunk_size=settings.payout_chunk_size,
            max_concurrent_chunks=settings.payout_max_concurrent_chunks,
            lease_seconds=settings.payout_lease_seconds,
            account_event_fresh_hours=settings.stripe_account_event_fresh_hours,
            stripe_requests_per_second=settings.stripe_requests_per_second,
        )
