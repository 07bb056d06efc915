"""The daily wallet auto-deduct rule for one retailer.

The deduction is a share of the outstanding debt (30 % unless the retailer has its own
percentage), then capped, in this order, by
  1. the retailer's maximum daily deduction (none: no cap), and
  2. what keeps the wallet at or above the minimum balance (default 10,000 RWF).
Nothing is taken from a wallet already below the minimum, from a retailer without debt, or from
a negative debt (bad data). The amount never exceeds the debt.

Rounding: amounts are integer minor units and the share is rounded DOWN
(floor(debt x percentage / 100)), so a retailer is never charged a fraction of a unit more than
the percentage. `db/escrow/deductions.py::compute_deductions` implements the same rule in SQL;
a test runs both on the same random data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class SkipReason(StrEnum):
    NEGATIVE_DEBT = "negative_debt"
    NO_DEBT = "no_debt"
    WALLET_BELOW_MINIMUM = "wallet_below_minimum"
    WALLET_AT_MINIMUM = "wallet_at_minimum"
    MAX_DAILY_ZERO = "max_daily_zero"
    ROUNDS_TO_ZERO = "rounds_to_zero"


class LimitedBy(StrEnum):
    """Which bound set the amount; ties go to the earlier one in this order."""

    PERCENTAGE = "percentage"
    MAX_DAILY = "max_daily"
    MINIMUM_BALANCE = "minimum_balance"


ZERO_REASONS = {
    LimitedBy.PERCENTAGE: SkipReason.ROUNDS_TO_ZERO,
    LimitedBy.MAX_DAILY: SkipReason.MAX_DAILY_ZERO,
    LimitedBy.MINIMUM_BALANCE: SkipReason.WALLET_AT_MINIMUM,
}


@dataclass(frozen=True)
class Deduction:
    amount: int
    skip_reason: SkipReason | None
    limited_by: LimitedBy | None

    @property
    def deducts(self) -> bool:
        return self.amount > 0


def _require_int(name: str, value: object, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} is {value!r}, expected an integer in minor units")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} is {value!r}, expected >= {minimum}")


def percentage_basis_points(percentage: Decimal) -> int:
    """30 → 3000. The percentage must be in (0, 100] with at most two decimals."""
    if not isinstance(percentage, Decimal) or not percentage.is_finite():
        raise TypeError(f"percentage is {percentage!r}, expected a finite Decimal")
    if not Decimal(0) < percentage <= Decimal(100):
        raise ValueError(f"percentage is {percentage}, expected more than 0 and at most 100")
    basis_points = percentage * 100
    if basis_points != basis_points.to_integral_value():
        raise ValueError(f"percentage is {percentage}, expected at most two decimals")
    return int(basis_points)


def compute_deduction(
    *,
    debt: int,
    wallet_balance: int,
    percentage: Decimal,
    max_daily: int | None,
    minimum_balance: int,
) -> Deduction:
    """Today's deduction for one retailer; every amount in the same currency's minor units."""
    _require_int("debt", debt)
    _require_int("wallet_balance", wallet_balance)
    _require_int("minimum_balance", minimum_balance, minimum=0)
    if max_daily is not None:
        _require_int("max_daily", max_daily, minimum=0)
    basis_points = percentage_basis_points(percentage)

    if debt < 0:
        return Deduction(0, SkipReason.NEGATIVE_DEBT, None)
    if debt == 0:
        return Deduction(0, SkipReason.NO_DEBT, None)
    if wallet_balance < minimum_balance:
        return Deduction(0, SkipReason.WALLET_BELOW_MINIMUM, None)

    bounds = [(LimitedBy.PERCENTAGE, debt * basis_points // 10_000)]
    if max_daily is not None:
        bounds.append((LimitedBy.MAX_DAILY, max_daily))
    bounds.append((LimitedBy.MINIMUM_BALANCE, wallet_balance - minimum_balance))
    amount = min(value for _, value in bounds)
    limited_by = next(bound for bound, value in bounds if value == amount)
    if amount == 0:
        return Deduction(0, ZERO_REASONS[limited_by], limited_by)
    return Deduction(amount, None, limited_by)
