"""The payouts and escrow knobs are one resource per workflow, filled from the settings (so the
LENDING_* variables keep working), shown in the UI, refused with the field named when wrong."""

from __future__ import annotations

from decimal import Decimal

import pydantic
import pytest

from lending_pipelines.resource_defs import build_resources
from lending_pipelines.resources.escrow_config import EscrowConfig
from lending_pipelines.resources.payouts_config import PayoutsConfig
from lending_pipelines.settings import Settings


def test_the_payouts_knobs_come_from_the_environment_through_the_config_resource():
    settings = Settings.from_env(
        {
            "LENDING_TOKEN_RATE": "0.0725",
            "LENDING_PAYOUT_CURRENCY": "EUR",
            "LENDING_PAYOUT_MINIMUM_TOKENS": "150",
            "LENDING_PAYOUT_CHUNK_SIZE": "7",
            "LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS": "3",
            "LENDING_PAYOUT_LEASE_SECONDS": "120",
            "LENDING_STRIPE_ACCOUNT_EVENT_FRESH_HOURS": "6",
            "LENDING_STRIPE_REQUESTS_PER_SECOND": "11",
        }
    )
    config = build_resources(settings)["payouts_config"]
    assert isinstance(config, PayoutsConfig)
    assert config.rate == Decimal("0.0725") and isinstance(config.rate, Decimal)
    assert (
        config.currency,
        config.minimum_tokens,
        config.chunk_size,
        config.max_concurrent_chunks,
        config.lease_seconds,
        config.account_event_fresh_hours,
        config.stripe_requests_per_second,
    ) == ("EUR", 150, 7, 3, 120, 6, 11)


def test_the_escrow_knobs_come_from_the_environment_through_the_config_resource():
    settings = Settings.from_env(
        {
            "LENDING_AUTO_DEDUCT_PERCENT": "12.5",
            "LENDING_MIN_WALLET_BALANCE_MINOR": "2500",
            "LENDING_WALLET_CURRENCY": "KES",
        }
    )
    config = build_resources(settings)["escrow_config"]
    assert isinstance(config, EscrowConfig)
    assert config.default_percentage == Decimal("12.5")
    assert (config.wallet_currency, config.min_wallet_balance_minor) == ("KES", 2500)


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        (lambda s: PayoutsConfig.from_settings(s).model_copy(), None, None),
        (
            lambda s: PayoutsConfig(**{**_payouts(s), "token_rate": "0"}),
            "token_rate",
            "'0'",
        ),
        (
            lambda s: PayoutsConfig(**{**_payouts(s), "token_rate": "a lot"}),
            "token_rate",
            "'a lot'",
        ),
        (lambda s: PayoutsConfig(**{**_payouts(s), "currency": "usd"}), "currency", "'usd'"),
        (
            lambda s: EscrowConfig(**{**_escrow(s), "auto_deduct_percent": "100.5"}),
            "auto_deduct_percent",
            "'100.5'",
        ),
        (
            lambda s: EscrowConfig(**{**_escrow(s), "wallet_currency": "RW"}),
            "wallet_currency",
            "'RW'",
        ),
    ],
)
def test_a_wrong_knob_is_refused_naming_the_field_and_value(build, field, value):
    settings = Settings.from_env({})
    if field is None:
        build(settings)  # the defaults are valid
        return
    with pytest.raises(pydantic.ValidationError) as info:
        build(settings)
    assert field in str(info.value) and value in str(info.value)


def _payouts(settings: Settings) -> dict:
    return PayoutsConfig.from_settings(settings).model_dump()


def _escrow(settings: Settings) -> dict:
    return EscrowConfig.from_settings(settings).model_dump()
