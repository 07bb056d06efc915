"""How credit amounts read in messages and refusals: `INR 1,200.50` (integer minor units in,
exact text out; never a float)."""

from __future__ import annotations

from .currency import minor_unit_exponent


def format_amount(amount_minor: int, currency: str) -> str:
    """`format_amount(120050, "INR")` → `'INR 1,200.50'`; RWF has no minor units."""
    exponent = minor_unit_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    if not exponent:
        return f"{currency} {sign}{abs(amount_minor):,}"
    major, minor = divmod(abs(amount_minor), 10**exponent)
    return f"{currency} {sign}{major:,}.{str(minor).zfill(exponent)}"
