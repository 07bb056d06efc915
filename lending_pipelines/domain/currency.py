"""ISO 4217 minor units for the currencies this platform handles.

Amounts are stored as integers in minor units; a currency's exponent says how many minor units
make a major one (RWF and UGX have none, KES has cents). A currency not listed here is unknown:
data carrying it is refused with a reason rather than guessed at.
"""

from __future__ import annotations

MINOR_UNIT_EXPONENTS: dict[str, int] = {
    "RWF": 0,
    "UGX": 0,
    "KES": 2,
    "TZS": 2,
    "ETB": 2,
    "NGN": 2,
    "GHS": 2,
    "ZAR": 2,
    "INR": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
}
KNOWN_CURRENCIES = frozenset(MINOR_UNIT_EXPONENTS)


class UnknownCurrencyError(ValueError):
    """A currency code outside MINOR_UNIT_EXPONENTS."""


def minor_unit_exponent(currency: str) -> int:
    try:
        return MINOR_UNIT_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrencyError(
            f"currency {currency!r} is unknown; known: {sorted(KNOWN_CURRENCIES)}"
        ) from None


def minor_units_per_major(currency: str) -> int:
    """10 ** exponent: what ledgers such as Blnk call the `precision` of an amount."""
    return 10 ** minor_unit_exponent(currency)
