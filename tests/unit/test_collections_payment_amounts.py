"""Amounts are parsed in integer rupees and paise (no Decimal on the way): for every amount a bank
file can carry, plain or Indian-grouped, with or without paise and a currency prefix, the result
is exactly the Decimal value times 100."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain import collections_payments as p


def indian(rupees: int) -> str:
    digits = str(rupees)
    head, tail = digits[:-3], digits[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *groups, tail]) if head else tail


@given(
    rupees=st.integers(min_value=0, max_value=10**15),
    paise=st.one_of(st.none(), st.from_regex(r"\d{1,2}", fullmatch=True)),
    grouped=st.booleans(),
    prefix=st.sampled_from(["", "₹", "₹ ", "INR ", "Rs.", "rs "]),
)
def test_amounts_parse_to_the_exact_decimal_value_in_paise(rupees, paise, grouped, prefix):
    number = (indian(rupees) if grouped else str(rupees)) + (f".{paise}" if paise else "")
    expected = Decimal(number.replace(",", "")) * 100
    assert p.parse_amount_paise(f" {prefix}{number} ") == expected
