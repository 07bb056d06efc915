"""Token → money conversion, exact, with the rounding written down.

Creators earn integer tokens; they are paid in a currency's minor units (cents) at a configured
rate in major units per token (default 0.05 USD). The product `tokens * rate` is computed in
`Decimal` and rounded **down** to a whole minor unit: the platform never pays a fraction of a
cent more than the tokens are worth. Floats never take part.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from .currency import minor_unit_exponent


def _check_rate(rate: Decimal) -> None:
    if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
        raise ValueError(f"token rate is {rate!r}, expected a positive Decimal")


def minor_units_per_token(rate: Decimal, currency: str) -> Decimal:
    """How many minor units one token is worth (0.05 USD → Decimal('5.00') cents)."""
    _check_rate(rate)
    return rate * (Decimal(10) ** minor_unit_exponent(currency.upper()))


def tokens_to_minor(tokens: int, rate: Decimal, currency: str) -> int:
    """`tokens` at `rate` major units each, in whole minor units, rounded down.

    >>> tokens_to_minor(1000, Decimal("0.05"), "USD")
    5000
    >>> tokens_to_minor(7, Decimal("0.033"), "USD")   # 23.1 cents → 23
    23
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int):
        raise TypeError(f"tokens is {tokens!r}, expected an int")
    if tokens < 0:
        raise ValueError(f"tokens is {tokens}, expected >= 0")
    exact = Decimal(tokens) * minor_units_per_token(rate, currency)
    return int(exact.to_integral_value(rounding=ROUND_DOWN))


def format_minor(amount_minor: int, currency: str) -> str:
    """`5000, "USD"` → `"USD 50.00"` (for metadata and alerts, never for arithmetic)."""
    exponent = minor_unit_exponent(currency.upper())
    value = Decimal(amount_minor).scaleb(-exponent)
    return f"{currency.upper()} {value:,.{exponent}f}"
