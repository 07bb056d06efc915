"""Phone numbers as partners type them, reduced to the 12-digit form M-Pesa B2C pays."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain.phone import InvalidPhoneError, mask_phone, normalise_msisdn


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("254712345678", "254712345678"),
        ("0712345678", "254712345678"),
        ("712345678", "254712345678"),
        ("+254712345678", "254712345678"),
        ("00254712345678", "254712345678"),
        ("0712 345 678", "254712345678"),
        ("+254-712-345-678", "254712345678"),
        ("(0712) 345.678", "254712345678"),
        ("0110123456", "254110123456"),
        (" 254110123456 ", "254110123456"),
    ],
)
def test_local_forms_become_the_12_digit_msisdn(raw, expected):
    assert normalise_msisdn(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (None, "is missing"),
        ("", "is missing"),
        ("   ", "is missing"),
        ("12345", "not a Kenyan"),
        ("0812 345 678", "not a Kenyan mobile number"),
        ("+1 415 555 0100", "not a Kenyan"),
        ("+255712345678", "not a Kenyan"),
        ("2547123456789", "not a Kenyan mobile number"),
        ("07123x5678", "characters other than digits"),
        (712345678, "is not text"),
    ],
)
def test_an_unpayable_number_is_refused_quoting_the_value_masked(raw, fragment):
    with pytest.raises(InvalidPhoneError) as caught:
        normalise_msisdn(raw)
    message = str(caught.value)
    assert fragment in message and f"phone {mask_phone(raw)} " in message
    if isinstance(raw, str) and len(raw.strip()) >= 5 or isinstance(raw, int):
        assert str(raw).strip() not in message


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("0812 345 678", "0812 *** 678"),
        ("+255712345678", "+255 *** 678"),
        ("254712345678", "2547 *** 678"),
        ("12345", "12 ***"),
        (712345678, "7123 *** 678"),
        (None, "None"),
        ("  ", "'  '"),
    ],
)
def test_a_number_is_shown_masked_enough_to_spot_a_typo_not_to_call(raw, masked):
    assert mask_phone(raw) == masked


@given(st.sampled_from("17"), st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_every_accepted_form_of_a_number_gives_the_same_msisdn(prefix, rest):
    msisdn = f"254{prefix}{rest}"
    forms = [
        msisdn,
        f"+{msisdn}",
        f"0{prefix}{rest}",
        f"{prefix}{rest}",
        f"0{prefix}{rest[:2]} {rest[2:5]} {rest[5:]}",
    ]
    assert {normalise_msisdn(form) for form in forms} == {msisdn}


@given(st.text(max_size=20))
def test_whatever_comes_in_the_result_is_a_valid_msisdn_or_a_clear_error(raw):
    try:
        result = normalise_msisdn(raw)
    except InvalidPhoneError as exc:
        assert f"phone {mask_phone(raw)} " in str(exc)
        digits = "".join(ch for ch in raw if ch.isdigit())
        if len(digits) >= 9:  # long enough to be someone's number: never shown whole
            assert raw.strip() not in str(exc)
    else:
        assert len(result) == 12 and result.startswith(("2547", "2541")) and result.isdigit()
