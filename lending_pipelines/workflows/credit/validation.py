"""Order-placement validation against the database: what the ordering platform calls before
accepting an order, and what `lending credit validate-order` runs for operators.

    from lending_pipelines.workflows.credit.validation import validate_retailer_order
    with engine.connect() as conn:
        decision = validate_retailer_order(conn, "r-042", payment_mode="CREDIT",
                                           amount=120_000, currency="INR")
    if not decision.allowed:
        refuse(decision.rule, decision.message)   # names the rule and the numbers

The rules are `domain.credit_orders.validate_order` (importable without a database too, given
a `CreditAccount`); this reads the retailer's status, limits and current outstanding.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sqlalchemy.engine import Connection

from ...db.credit.exposure import retailer_exposure
from ...db.credit.manual import CreditOperationError
from ...domain.credit_orders import CreditAccount, OrderDecision, validate_order
from ...domain.currency import minor_unit_exponent


def credit_account(conn: Connection, retailer_id: str, *, tz: str) -> CreditAccount:
    row = retailer_exposure(conn, retailer_id, tz=tz)
    if row is None:
        raise CreditOperationError(
            f"retailer_id {retailer_id!r} is not a retailer with a credit account"
        )
    return CreditAccount(
        retailer_id=row["retailer_id"],
        credit_status=row["credit_status"],
        credit_limit=row["credit_limit"],
        max_order_value=row["max_order_value"],
        outstanding=row["outstanding"],
        currency=row["currency"],
    )


def validate_retailer_order(
    conn: Connection,
    retailer_id: str,
    *,
    payment_mode: str,
    amount: int,
    currency: str,
    tz: str = "Asia/Kolkata",
) -> OrderDecision:
    """`amount` in minor units. Raises CreditOperationError for an unknown retailer."""
    account = credit_account(conn, retailer_id, tz=tz)
    return validate_order(account, payment_mode=payment_mode, amount=amount, currency=currency)


def to_minor(amount: str, currency: str) -> int:
    """'1200.50' INR → 120050; refuses text that is not a number or has too many decimals."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise CreditOperationError(
            f"amount is {amount!r}, expected a number like 1200.50"
        ) from None
    minor = value * (Decimal(10) ** minor_unit_exponent(currency))
    if not value.is_finite() or minor != minor.to_integral_value():
        raise CreditOperationError(
            f"amount is {amount!r}: {currency} has {minor_unit_exponent(currency)} decimal places"
        )
    return int(minor)
