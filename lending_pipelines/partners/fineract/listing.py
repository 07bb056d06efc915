"""A listing page read in one pass: pydantic-core parses the response bytes straight into the
page's models (no `json.loads` into dicts first, dates validated natively as three strict
integers), about half the CPU of decoding and then validating loan by loan.

The one-pass reader is strictly narrower than the exact reader in `models.parse_page`, which stays
the authority: whenever the page is anything but plainly well-formed (a malformed loan, a bad
envelope, invalid JSON, a number it cannot read exactly), `read_page` returns None and the caller
takes the exact path, which keeps the good loans and names the bad one (field and value) as before.

Exactness: pydantic-core reads a JSON number with a fraction as a binary float before it becomes a
Decimal (via its shortest repr). That is exact for a number of at most 15 significant digits
written without an exponent (a double holds every such decimal, and its shortest repr is that
decimal), so a page with a longer digit run or an exponent anywhere is left to the exact reader,
which decodes numbers as Decimal from their text."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import pydantic
from pydantic import Field, StrictInt

from ..payloads import Payload
from .models import ListingPage, LoanPayload, TimelinePayload

# Digits and the decimal point become "0": a JSON number's mantissa is then a run of "0"s.
_NUMBER_CHARS = bytes.maketrans(b"0123456789.", b"0" * 11)
# DBL_DIG: a decimal of up to 15 significant digits survives a double; with its point, 16
# characters (an integer of 16 digits is read as an integer, exactly).
_LONGEST_EXACT_RUN = 16


def numbers_read_exactly(content: bytes) -> bool:
    """Every fractional number in `content` has at most 15 digits and none has an exponent, so
    reading it through a float loses nothing. Conservative: a long run of digits inside a
    string, or a digit followed by an "e", also says no."""
    marked = content.translate(_NUMBER_CHARS)
    return b"0" * (_LONGEST_EXACT_RUN + 1) not in marked and not (
        b"0e" in marked or b"0E" in marked
    )


def _day(parts: tuple[int, int, int]) -> date:
    return date(*parts)  # ValueError for three integers that make no day: a validation error


# `[yyyy, m, d]` of three JSON integers (true, 2.0 and "2" are refused), checked in Rust.
_Ymd = Annotated[tuple[StrictInt, StrictInt, StrictInt], pydantic.AfterValidator(_day)]


class _Timeline(TimelinePayload):
    submitted_on: _Ymd | None = Field(None, alias="submittedOnDate")
    approved_on: _Ymd | None = Field(None, alias="approvedOnDate")
    expected_disbursement_on: _Ymd | None = Field(None, alias="expectedDisbursementDate")
    actual_disbursement_on: _Ymd | None = Field(None, alias="actualDisbursementDate")


class _Loan(LoanPayload):
    timeline: _Timeline | None = None


class _Page(Payload):
    total_filtered_records: StrictInt = Field(alias="totalFilteredRecords")
    page_items: list[_Loan] = Field(alias="pageItems")


def read_page(tenant: str, content: bytes) -> ListingPage | None:
    """The page in one pass, or None when only the exact reader may decide about it."""
    if not numbers_read_exactly(content):
        return None
    try:
        page = _Page.model_validate_json(content)
    except pydantic.ValidationError:
        return None
    loans = [item.to_loan(tenant) for item in page.page_items]
    return ListingPage(total=page.total_filtered_records, size=len(loans), loans=loans)
