"""The auto-deduct rule (domain/deduction.py): a table of cases and properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain.deduction import (
    LimitedBy,
    SkipReason,
    compute_deduction,
    percentage_basis_points,
)

THIRTY = Decimal(30)


@pytest.mark.parametrize(
    ("debt", "wallet", "pct", "max_daily", "minimum", "amount", "reason", "limited_by"),
    [
        # 30 % of 100,000 = 30,000; nothing else binds
        (100_000, 200_000, THIRTY, None, 10_000, 30_000, None, LimitedBy.PERCENTAGE),
        # the max daily deduction caps it
        (100_000, 200_000, THIRTY, 20_000, 10_000, 20_000, None, LimitedBy.MAX_DAILY),
        # only 15,000 above the minimum balance
        (100_000, 25_000, THIRTY, None, 10_000, 15_000, None, LimitedBy.MINIMUM_BALANCE),
        # the wallet is below the minimum: skipped
        (50_000, 8_000, THIRTY, None, 10_000, 0, SkipReason.WALLET_BELOW_MINIMUM, None),
        # exactly at the minimum: nothing to take
        (
            100_000,
            10_000,
            THIRTY,
            None,
            10_000,
            0,
            SkipReason.WALLET_AT_MINIMUM,
            LimitedBy.MINIMUM_BALANCE,
        ),
        # rounding is down: 30 % of 3 is 0.9 → 0
        (3, 50_000, THIRTY, None, 10_000, 0, SkipReason.ROUNDS_TO_ZERO, LimitedBy.PERCENTAGE),
        # 30 % of 10,001 = 3,000.3 → 3,000
        (10_001, 50_000, THIRTY, None, 10_000, 3_000, None, LimitedBy.PERCENTAGE),
        # a per-retailer percentage with decimals: 12.5 % of 1,000 = 125
        (1_000, 50_000, Decimal("12.5"), None, 10_000, 125, None, LimitedBy.PERCENTAGE),
        # 100 % never exceeds the debt
        (4_000, 500_000, Decimal(100), None, 10_000, 4_000, None, LimitedBy.PERCENTAGE),
        # a zero daily cap means no deduction
        (100_000, 200_000, THIRTY, 0, 10_000, 0, SkipReason.MAX_DAILY_ZERO, LimitedBy.MAX_DAILY),
        # a tie between percentage and cap is reported as the percentage
        (100_000, 200_000, THIRTY, 30_000, 10_000, 30_000, None, LimitedBy.PERCENTAGE),
        # no minimum: the whole wallet may go, but never more than the share of debt
        (100_000, 7_000, THIRTY, None, 0, 7_000, None, LimitedBy.MINIMUM_BALANCE),
        # a negative wallet (overdraft) is below any minimum
        (100_000, -500, THIRTY, None, 0, 0, SkipReason.WALLET_BELOW_MINIMUM, None),
        (0, 200_000, THIRTY, None, 10_000, 0, SkipReason.NO_DEBT, None),
        (-5_000, 200_000, THIRTY, None, 10_000, 0, SkipReason.NEGATIVE_DEBT, None),
    ],
)
def test_auto_deduct_rule_table(debt, wallet, pct, max_daily, minimum, amount, reason, limited_by):
    result = compute_deduction(
        debt=debt,
        wallet_balance=wallet,
        percentage=pct,
        max_daily=max_daily,
        minimum_balance=minimum,
    )
    assert (result.amount, result.skip_reason, result.limited_by) == (amount, reason, limited_by)
    assert result.deducts == (amount > 0)


@pytest.mark.parametrize(
    ("field", "kwargs", "error", "message"),
    [
        ("percentage", {"percentage": Decimal(0)}, ValueError, "more than 0"),
        ("percentage", {"percentage": Decimal("100.01")}, ValueError, "at most 100"),
        ("percentage", {"percentage": Decimal("33.333")}, ValueError, "two decimals"),
        ("percentage", {"percentage": 30.0}, TypeError, "Decimal"),
        ("debt", {"debt": 10.5}, TypeError, "debt is 10.5"),
        ("minimum_balance", {"minimum_balance": -1}, ValueError, "minimum_balance is -1"),
        ("max_daily", {"max_daily": -3}, ValueError, "max_daily is -3"),
        ("wallet_balance", {"wallet_balance": True}, TypeError, "wallet_balance is True"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field_and_value(field, kwargs, error, message):
    arguments = dict(
        debt=100, wallet_balance=100, percentage=THIRTY, max_daily=None, minimum_balance=0
    )
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        compute_deduction(**arguments)


def test_percentage_is_read_as_exact_basis_points():
    assert percentage_basis_points(Decimal("30")) == 3000
    assert percentage_basis_points(Decimal("0.01")) == 1
    assert percentage_basis_points(Decimal("100.00")) == 10000


money = st.integers(min_value=-(10**12), max_value=10**12)
percentages = st.integers(min_value=1, max_value=10_000).map(lambda bp: Decimal(bp) / 100)
caps = st.none() | st.integers(min_value=0, max_value=10**12)
minimums = st.integers(min_value=0, max_value=10**9)


@given(debt=money, wallet=money, pct=percentages, cap=caps, minimum=minimums)
def test_auto_deduct_never_breaks_its_bounds(debt, wallet, pct, cap, minimum):
    result = compute_deduction(
        debt=debt, wallet_balance=wallet, percentage=pct, max_daily=cap, minimum_balance=minimum
    )
    assert result.amount >= 0
    assert result.amount <= max(debt, 0)
    assert cap is None or result.amount <= cap
    assert result.amount == 0 or wallet - result.amount >= minimum
    assert result.amount <= max(debt, 0) * pct / 100
    assert (result.amount == 0) == (result.skip_reason is not None)


@given(debt=st.integers(min_value=1, max_value=10**12), pct=percentages, minimum=minimums)
def test_with_ample_wallet_and_no_cap_the_deduction_is_the_floored_share(debt, pct, minimum):
    result = compute_deduction(
        debt=debt,
        wallet_balance=minimum + debt,
        percentage=pct,
        max_daily=None,
        minimum_balance=minimum,
    )
    share = debt * pct / 100
    assert share - 1 < result.amount <= share


@given(debt=st.integers(min_value=1, max_value=10**12), wallet=money, minimum=minimums)
def test_a_wallet_below_the_minimum_is_never_touched(debt, wallet, minimum):
    if wallet >= minimum:
        wallet = minimum - 1
    result = compute_deduction(
        debt=debt,
        wallet_balance=wallet,
        percentage=THIRTY,
        max_daily=None,
        minimum_balance=minimum,
    )
    assert (result.amount, result.skip_reason) == (0, SkipReason.WALLET_BELOW_MINIMUM)
