"""Payment row validation: each reason code with its field and value, UTRs, Indian amounts."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain import collections_payments as p

RECEIVED = date(2026, 11, 30)
GOOD = {"utr": "SBINN26334123456", "loan_id": "7", "amount": "1,500.00", "paid_on": "2026-11-29"}


@pytest.mark.parametrize(
    ("text", "paise"),
    [
        ("1,00,000.50", 10000050),
        ("100000.50", 10000050),
        ("1,00,00,000", 1000000000),
        ("12,34,567.8", 123456780),
        ("999", 99900),
        ("1,000", 100000),
        ("₹ 2,500", 250000),
        ("INR 10.05", 1005),
        ("0.07", 7),
    ],
)
def test_amounts_in_indian_or_plain_notation_parse_to_exact_paise(text, paise):
    assert p.parse_amount_paise(text) == paise


@pytest.mark.parametrize(
    "text", ["100,000", "1,00,0000", "1e5", "12.345", "abc", "-500", "1,00,000.", "NaN", "1 000"]
)
def test_amounts_that_are_not_numbers_or_misgrouped_are_refused(text):
    with pytest.raises(p.AmountError, match="amount"):
        p.parse_amount_paise(text)


@pytest.mark.parametrize(
    ("paise", "text"),
    [(0, "₹0.00"), (99_999_99, "₹99,999.99"), (1_00_000_50, "₹1,00,000.50"),
     (1_00_00_000_00, "₹1,00,00,000.00"), (-12_345_67, "-₹12,345.67")],
)  # fmt: skip
def test_rupees_are_grouped_the_indian_way(paise, text):
    assert p.format_inr(paise) == text


@given(st.integers(min_value=0, max_value=10**13))
def test_indian_formatting_round_trips_exactly(paise):
    assert p.parse_amount_paise(p.format_inr(paise)) == paise
    assert Decimal(p.format_inr(paise)[1:].replace(",", "")) * 100 == paise


@pytest.mark.parametrize(
    ("utr", "kind"),
    [
        ("SBINN26334123456", "NEFT"),
        ("hdfcn26334000001", "NEFT"),
        ("HDFCR52026113012345678", "RTGS"),
        ("633412345678", "UPI/IMPS"),
        ("SBIN26334123456", None),
        ("HDFCR52026133012345678", None),
        ("63341234567", None),
        ("UTR-1", None),
    ],
)
def test_utr_formats_banks_issue(utr, kind):
    assert p.utr_kind(utr) == kind


def _one(row, **kwargs):
    defaults = {
        "received_on": RECEIVED,
        "loan_statuses": {7: "ACTIVE", 8: "CLOSED"},
        "recorded_utrs": ["HDFCN26330000009"],
    }
    defaults.update(kwargs)
    return p.validate_rows([row], **defaults)


@pytest.mark.parametrize(
    ("change", "reason", "field", "value"),
    [
        ({"utr": ""}, p.MISSING_VALUE, "utr", ""),
        ({"amount": "  "}, p.MISSING_VALUE, "amount", "  "),
        ({"utr": "12345"}, p.INVALID_UTR, "utr", "12345"),
        ({"amount": "12.5.0"}, p.INVALID_AMOUNT, "amount", "12.5.0"),
        ({"amount": "0.99"}, p.AMOUNT_OUT_OF_RANGE, "amount", "0.99"),
        ({"amount": "1,00,00,000.01"}, p.AMOUNT_OUT_OF_RANGE, "amount", "1,00,00,000.01"),
        ({"paid_on": "31/02/2026"}, p.INVALID_DATE, "paid_on", "31/02/2026"),
        ({"paid_on": "2026-12-01"}, p.FUTURE_DATE, "paid_on", "2026-12-01"),
        ({"paid_on": "22/11/2026"}, p.BACKDATED, "paid_on", "22/11/2026"),
        ({"loan_id": "L-7"}, p.INVALID_LOAN_ID, "loan_id", "L-7"),
        ({"loan_id": "99"}, p.UNKNOWN_LOAN, "loan_id", "99"),
        ({"loan_id": "8"}, p.LOAN_NOT_PAYABLE, "loan_id", "8 (CLOSED)"),
        ({"utr": "hdfcn26330000009"}, p.DUPLICATE_UTR_RECORDED, "utr", "HDFCN26330000009"),
    ],
)
def test_each_rejection_names_its_reason_field_and_value(change, reason, field, value):
    result = _one({**GOOD, **change})
    assert result.accepted == ()
    (rejected,) = result.rejected
    assert (rejected.reason_code, rejected.field, rejected.value) == (reason, field, value)
    assert result.by_reason == {reason: 1}


def test_bounds_and_backdating_edges_are_inclusive():
    for amount in ("1", "1,00,00,000"):
        assert len(_one({**GOOD, "amount": amount}).accepted) == 1
    seven_days = (RECEIVED - timedelta(days=7)).isoformat()
    assert len(_one({**GOOD, "paid_on": seven_days}).accepted) == 1
    assert len(_one({**GOOD, "paid_on": RECEIVED.isoformat()}).accepted) == 1


def test_a_utr_repeated_in_the_file_is_accepted_once():
    rows = [GOOD, {**GOOD, "amount": "10"}, {**GOOD, "utr": GOOD["utr"].lower()}]
    result = p.validate_rows(
        rows, received_on=RECEIVED, loan_statuses={7: "LEGAL"}, recorded_utrs=[]
    )
    assert [r.row_number for r in result.accepted] == [1]
    assert result.accepted[0].amount_minor == 150000
    assert [(r.row_number, r.reason_code) for r in result.rejected] == [
        (2, p.DUPLICATE_UTR_IN_FILE),
        (3, p.DUPLICATE_UTR_IN_FILE),
    ]


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "utr": st.sampled_from(["SBINN26334123456", "633412345678", "bad", ""]),
                "loan_id": st.sampled_from(["7", "8", "9", "x"]),
                "amount": st.sampled_from(["1,00,000.50", "0", "10", "abc", "1,00,00,001"]),
                "paid_on": st.sampled_from(["2026-11-30", "2026-12-01", "2026-11-01", "nope"]),
            }
        ),
        max_size=30,
    )
)
def test_no_row_is_dropped_silently(rows):
    result = p.validate_rows(
        rows, received_on=RECEIVED, loan_statuses={7: "ACTIVE", 8: "CLOSED"}, recorded_utrs=[]
    )
    assert len(result.accepted) + len(result.rejected) == len(rows)
    assert sum(result.by_reason.values()) == len(result.rejected)
    assert len({r.utr for r in result.accepted}) == len(result.accepted)
    numbers = sorted(
        [r.row_number for r in result.accepted] + [r.row_number for r in result.rejected]
    )
    assert numbers == list(range(1, len(rows) + 1))
