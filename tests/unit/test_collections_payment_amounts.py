"""Amounts are parsed in integer rupees and paise (no Decimal on the way): for every amount a bank
file can carry, plain or Indian-grouped, with or without paise and a currency prefix, the result
is exactly the Decimal value times 100."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain import collections_payments as p


@given(
    rupees=st.integers(min_value=0, max_value=10**15),
    paise=st.one_of(st.none(), st.from_regex(r"\d{1,2}", fullmatch=True)),
    grouped=st.booleans(),
    prefix=st.sampled_from(["", "₹", "₹ ", "INR ", "Rs.", "rs "]),
)
def test_amounts_parse_to_the_exact_decimal_value_in_paise(rupees, paise, grouped, prefix):
    digits = p.indian_grouping(rupees) if grouped else str(rupees)
    number = digits + (f".{paise}" if paise else "")
    expected = Decimal(number.replace(",", "")) * 100
    assert p.parse_amount_paise(f" {prefix}{number} ") == expected
