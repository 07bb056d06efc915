"""Order-placement validation: may this retailer place this order with this payment mode?

A library function the ordering platform imports (`from lending_pipelines.domain.credit_orders
import validate_order`) with the retailer's credit status, limits and current outstanding; the
same function backs `lending credit validate-order`. Rules, in the order they are checked:

* the amount is a positive whole number of minor units (`invalid_amount`), and the payment mode
  is CREDIT or COD (`invalid_payment_mode`);
* COD is always allowed, also while credit is paused or blocked;
* CREDIT is refused when credit is PAUSED (`credit_paused`) or BLOCKED (`credit_blocked`), in
  another currency than the account's (`currency_mismatch`), above the account's
  max_order_value (`above_max_order_value`), or above the available credit, limit − outstanding
  (`above_available_credit`).

Each refusal names the rule and the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .credit_money import format_amount

PAYMENT_MODES = ("CREDIT", "COD")
CREDIT_STATUSES = ("ACTIVE", "PAUSED", "BLOCKED")


@dataclass(frozen=True)
class CreditAccount:
    """What validation needs to know about a retailer's credit, amounts in minor units."""

    retailer_id: str
    credit_status: str
    credit_limit: int
    max_order_value: int
    outstanding: int
    currency: str

    @property
    def available(self) -> int:
        return max(0, self.credit_limit - self.outstanding)


@dataclass(frozen=True)
class OrderDecision:
    allowed: bool
    rule: str | None  # the refusing rule, None when allowed
    message: str


def _refuse(rule: str, message: str) -> OrderDecision:
    return OrderDecision(False, rule, message)


def validate_order(
    account: CreditAccount, *, payment_mode: str, amount: int, currency: str
) -> OrderDecision:
    """The decision for one order of `amount` minor units of `currency`."""
    who = f"retailer {account.retailer_id}"
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return _refuse("invalid_amount", f"{who}: amount is {amount!r}, expected > 0 minor units")
    if payment_mode not in PAYMENT_MODES:
        return _refuse(
            "invalid_payment_mode",
            f"{who}: payment_mode is {payment_mode!r}, expected one of {list(PAYMENT_MODES)}",
        )
    if payment_mode == "COD":
        return OrderDecision(True, None, f"{who}: COD order allowed")
    if account.credit_status == "PAUSED":
        return _refuse("credit_paused", f"{who}: credit is PAUSED; only COD orders are allowed")
    if account.credit_status == "BLOCKED":
        return _refuse("credit_blocked", f"{who}: credit is BLOCKED; only COD orders are allowed")
    if account.credit_status != "ACTIVE":
        return _refuse(
            "credit_blocked", f"{who}: credit_status is {account.credit_status!r}, not ACTIVE"
        )
    if currency != account.currency:
        return _refuse(
            "currency_mismatch",
            f"{who}: currency is {currency!r}, the credit account is in {account.currency}",
        )
    if amount > account.max_order_value:
        return _refuse(
            "above_max_order_value",
            f"{who}: order {format_amount(amount, currency)} is above max_order_value "
            f"{format_amount(account.max_order_value, currency)} by "
            f"{format_amount(amount - account.max_order_value, currency)}",
        )
    if amount > account.available:
        return _refuse(
            "above_available_credit",
            f"{who}: order {format_amount(amount, currency)} is above the available credit "
            f"{format_amount(account.available, currency)} (limit "
            f"{format_amount(account.credit_limit, currency)} - outstanding "
            f"{format_amount(account.outstanding, currency)}) by "
            f"{format_amount(amount - account.available, currency)}",
        )
    return OrderDecision(
        True,
        None,
        f"{who}: CREDIT order {format_amount(amount, currency)} allowed; "
        f"{format_amount(account.available - amount, currency)} credit left after it",
    )
