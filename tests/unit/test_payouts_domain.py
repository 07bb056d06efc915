"""The payout rules as plain functions: money conversion with explicit rounding, eligibility,
keys, and the decisions after a Stripe error."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain.money import format_minor, minor_units_per_token, tokens_to_minor
from lending_pipelines.domain.payouts import (
    CreatorState,
    Ineligible,
    LedgerEntry,
    PayoutRules,
    RetryPlan,
    WithdrawalRequest,
    available_at,
    batch_hash,
    classify_transfer_failure,
    evaluate_creator,
    item_key,
    retry_plan,
    stripe_idempotency_key,
)

AS_OF = datetime(2026, 3, 1, 2, tzinfo=UTC)
RULES = PayoutRules(as_of=AS_OF, minimum_tokens=200, token_rate=Decimal("0.05"), currency="USD")


def earning(tokens: int, age: timedelta) -> LedgerEntry:
    created = AS_OF - age
    return LedgerEntry(tokens, created, available_at("earning", created, 7))


def debit(kind: str, tokens: int, age: timedelta) -> LedgerEntry:
    created = AS_OF - age
    return LedgerEntry(tokens, created, available_at(kind, created, 7))


def creator(*entries, **overrides) -> CreatorState:
    values = {
        "creator_id": 1,
        "kyc_status": "verified",
        "stripe_account_id": "acct_1",
        "payouts_enabled": True,
        "transfers_capability": "active",
        "entries": entries,
    }
    values.update(overrides)
    return CreatorState(**values)


# --- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "rate", "currency", "minor"),
    [
        (1_000, "0.05", "USD", 5_000),
        (7, "0.033", "USD", 23),  # 23.1 cents → 23, never 24
        (3, "0.0333", "USD", 9),  # 9.99 cents → 9
        (1, "0.004", "USD", 0),
        (10, "15", "RWF", 150),  # no minor units
        (0, "0.05", "USD", 0),
    ],
)
def test_tokens_convert_to_minor_units_rounding_down(tokens, rate, currency, minor):
    assert tokens_to_minor(tokens, Decimal(rate), currency) == minor


@given(
    tokens=st.integers(min_value=0, max_value=10**12),
    rate=st.decimals(min_value="0.0001", max_value="100", places=4),
)
def test_conversion_never_pays_more_than_the_tokens_are_worth_nor_a_cent_less(tokens, rate):
    minor = tokens_to_minor(tokens, rate, "USD")
    exact = Decimal(tokens) * rate * 100
    assert isinstance(minor, int)
    assert minor <= exact < minor + 1


def test_bad_conversion_inputs_are_refused_naming_the_value():
    with pytest.raises(ValueError, match="-5"):
        tokens_to_minor(-5, Decimal("0.05"), "USD")
    with pytest.raises(TypeError, match="1.5"):
        tokens_to_minor(1.5, Decimal("0.05"), "USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0"):
        minor_units_per_token(Decimal(0), "USD")


def test_amounts_are_formatted_from_minor_units():
    assert format_minor(123_456, "USD") == "USD 1,234.56"
    assert format_minor(5_000, "RWF") == "RWF 5,000"


# --- eligibility -------------------------------------------------------------------------------


def test_an_earning_exactly_seven_days_old_is_available():
    result = evaluate_creator(creator(earning(400, timedelta(days=7))), RULES)
    assert result.eligible and result.payout_tokens == 400 and result.amount_minor == 2_000


def test_an_earning_one_second_short_of_seven_days_is_held():
    result = evaluate_creator(creator(earning(400, timedelta(days=7, seconds=-1))), RULES)
    assert result.reason is Ineligible.HELD_FOR_CHARGEBACKS
    assert (result.available_tokens, result.held_tokens) == (0, 400)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (creator(earning(500, timedelta(days=30)), kyc_status="pending"), "kyc_not_verified"),
        (creator(earning(500, timedelta(days=30)), stripe_account_id=None), "no_connect_account"),
        (creator(earning(199, timedelta(days=30))), "below_minimum"),
        (
            creator(earning(150, timedelta(days=30)), earning(60, timedelta(days=1))),
            "held_for_chargebacks",
        ),
        (creator(earning(500, timedelta(days=30)), payouts_enabled=False), "payouts_disabled"),
        (
            creator(earning(500, timedelta(days=30)), transfers_capability="inactive"),
            "payouts_disabled",
        ),
        (
            creator(earning(500, timedelta(days=30)), debit("chargeback", -400, timedelta(days=1))),
            "below_minimum",
        ),
        (creator(earning(900, timedelta(days=30)), reserved_tokens=800), "below_minimum"),
    ],
)
def test_each_ineligibility_reason(state, reason):
    result = evaluate_creator(state, RULES)
    assert result.reason == reason and result.payout_tokens == 0 and result.amount_minor == 0


def test_debits_count_whenever_they_were_made_and_credits_only_once_available():
    state = creator(
        earning(1_000, timedelta(days=30)),
        debit("withdrawal_completed", -600, timedelta(days=-5)),  # made after as_of
        earning(5_000, timedelta(days=-1)),  # earned after as_of
    )
    result = evaluate_creator(state, RULES)
    assert result.eligible and result.payout_tokens == 400 and result.held_tokens == 0


def test_pending_requests_are_honoured_up_to_the_available_balance():
    requests = (
        WithdrawalRequest(1, 150, AS_OF - timedelta(days=2)),
        WithdrawalRequest(2, 100, AS_OF - timedelta(days=1)),
        WithdrawalRequest(3, 999, AS_OF + timedelta(hours=1)),  # after the run: not yet
    )
    within = evaluate_creator(
        creator(earning(1_000, timedelta(days=30)), pending_requests=requests), RULES
    )
    assert within.payout_tokens == 250 and within.request_ids == (1, 2)
    capped = evaluate_creator(
        creator(
            earning(300, timedelta(days=30)),
            pending_requests=(WithdrawalRequest(4, 1_000, AS_OF - timedelta(days=1)),),
        ),
        RULES,
    )
    assert capped.payout_tokens == 300 and capped.amount_minor == 1_500


def test_a_payout_worth_less_than_a_cent_is_not_made():
    rules = PayoutRules(AS_OF, minimum_tokens=1, token_rate=Decimal("0.001"), currency="USD")
    result = evaluate_creator(creator(earning(5, timedelta(days=30))), rules)
    assert result.reason is Ineligible.ROUNDS_TO_ZERO


def test_available_at_applies_the_hold_only_to_earnings():
    created = datetime(2026, 1, 1, tzinfo=UTC)
    assert available_at("earning", created, 7) == created + timedelta(days=7)
    assert available_at("chargeback", created, 7) == created
    with pytest.raises(ValueError, match="bonus"):
        available_at("bonus", created, 7)


# --- keys and decisions -----------------------------------------------------------------------


def test_keys_are_deterministic_functions_of_the_date_and_creator():
    assert item_key(date(2026, 3, 1), 42) == "payouts-2026-03-01:42"
    assert batch_hash(date(2026, 3, 1)) == batch_hash(date(2026, 3, 1))
    assert batch_hash(date(2026, 3, 1)) != batch_hash(date(2026, 3, 15))
    assert stripe_idempotency_key("payouts-2026-03-01:42", 1) == "payouts-2026-03-01:42"
    assert stripe_idempotency_key("payouts-2026-03-01:42", 3) == "payouts-2026-03-01:42:g3"


@pytest.mark.parametrize(
    ("kind", "retryable", "unknown"),
    [
        ("rate_limited", True, False),
        ("connection", True, True),
        ("server", True, True),
        ("conflict", True, True),
        ("balance_insufficient", False, False),
        ("invalid_account", False, False),
        ("idempotency", False, False),
    ],
)
def test_stripe_errors_are_classified_for_the_item(kind, retryable, unknown):
    decision = classify_transfer_failure(kind)
    assert (decision.retryable, decision.outcome_unknown) == (retryable, unknown)
    assert decision.reason


@pytest.mark.parametrize(
    ("kwargs", "plan"),
    [
        ({"error_kind": "connection", "outcome_unknown": True}, RetryPlan.SAME_KEY),
        ({"error_kind": "rate_limited", "outcome_unknown": False}, RetryPlan.SAME_KEY),
        (
            {"error_kind": "server", "outcome_unknown": True, "replayed": True},
            RetryPlan.CONFIRM_THEN_NEW_KEY,
        ),
        (
            {"error_kind": "connection", "outcome_unknown": True, "key_age_hours": 30},
            RetryPlan.CONFIRM_THEN_NEW_KEY,
        ),
        ({"error_kind": "balance_insufficient", "outcome_unknown": False}, RetryPlan.STOP),
        (
            {
                "error_kind": "balance_insufficient",
                "outcome_unknown": False,
                "retry_final_kinds": ["balance_insufficient"],
            },
            RetryPlan.CONFIRM_THEN_NEW_KEY,
        ),
        (
            {
                "error_kind": "invalid_account",
                "outcome_unknown": False,
                "retry_final_kinds": ["balance_insufficient"],
            },
            RetryPlan.STOP,
        ),
    ],
)
def test_the_retry_plan_resends_a_key_only_while_it_can_still_tell_the_truth(kwargs, plan):
    values = {"replayed": False, "key_age_hours": 1.0, **kwargs}
    assert retry_plan(**values) is plan
