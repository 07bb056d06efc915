"""The escrow and auto-deduct workflow's knobs as one resource, visible (and overridable per run)
in the Dagster UI. `resource_defs.build_resources` fills it from the settings, so the LENDING_*
variables keep working; the assets and ops pass its values to the runs as plain arguments.

Per-retailer percentages, daily maxima and minimum balances live in `auto_deduct_settings`;
these are the defaults for retailers without their own. The escrow timezone is not here: the
partitions and schedules are built from it when the definitions load, before any resource
exists (LENDING_ESCROW_TIMEZONE).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import dagster as dg
from pydantic import Field, field_validator

from ..settings import Settings


class EscrowConfig(dg.ConfigurableResource):
    """Auto-deduct defaults and the wallet currency."""

    wallet_currency: str = Field(
        description="Currency of retailer wallets (LENDING_WALLET_CURRENCY)."
    )
    auto_deduct_percent: str = Field(
        description="Default share of outstanding debt deducted per day, a decimal in [0, 100] "
        "(LENDING_AUTO_DEDUCT_PERCENT)."
    )
    min_wallet_balance_minor: int = Field(
        ge=0,
        description="Default minimum wallet balance kept by auto-deduct, in minor units "
        "(LENDING_MIN_WALLET_BALANCE_MINOR).",
    )

    @field_validator("wallet_currency")
    @classmethod
    def _currency_code(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha() or not value.isupper():
            raise ValueError(f"wallet_currency is {value!r}, expected a three-letter ISO 4217 code")
        return value

    @field_validator("auto_deduct_percent")
    @classmethod
    def _percentage(cls, value: str) -> str:
        try:
            percent = Decimal(value)
        except InvalidOperation:
            raise ValueError(
                f"auto_deduct_percent is {value!r}, expected a decimal in [0, 100]"
            ) from None
        if not percent.is_finite() or not Decimal(0) <= percent <= Decimal(100):
            raise ValueError(f"auto_deduct_percent is {value!r}, expected a decimal in [0, 100]")
        return value

    @property
    def default_percentage(self) -> Decimal:
        """`auto_deduct_percent` as the exact decimal it is (never a float)."""
        return Decimal(self.auto_deduct_percent)

    @classmethod
    def from_settings(cls, settings: Settings) -> EscrowConfig:
        return cls(
            wallet_currency=settings.wallet_currency,
            auto_deduct_percent=str(settings.auto_deduct_percent),
            min_wallet_balance_minor=settings.min_wallet_balance_minor,
        )
