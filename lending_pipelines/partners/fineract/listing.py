"""A listing page read in one pass: pydantic-core parses the response bytes straight into typed
dicts of the fields `models.LoanPayload` reads, with the same strict types (no `json.loads` into
dicts first, no model object per nested payload, dates checked in Rust as three strict integers),
and the domain loans are built from those; about a third of the CPU of decoding and then
validating loan by loan.

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
from typing import Annotated, NotRequired

import pydantic
from pydantic import StrictInt, StrictStr
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from ...domain.tracked_loans import FineractLoan, LoanStatus
from .models import Amount, ListingPage

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


# The wire names and types of models.LoanPayload and its nested payloads (unknown keys ignored);
# tests/unit/test_fineract_listing_one_pass.py keeps the two field lists equal.
class _Status(TypedDict):
    id: StrictInt
    code: StrictStr
    value: StrictStr


class _Currency(TypedDict):
    code: StrictStr


class _Timeline(TypedDict, total=False):
    submittedOnDate: _Ymd | None
    approvedOnDate: _Ymd | None
    expectedDisbursementDate: _Ymd | None
    actualDisbursementDate: _Ymd | None


class _Summary(TypedDict, total=False):
    totalOutstanding: Amount | None


class _Loan(TypedDict):
    id: StrictInt
    accountNo: StrictStr
    status: _Status
    currency: _Currency
    principal: Amount
    externalId: NotRequired[StrictStr | None]
    clientId: NotRequired[StrictInt | None]
    clientName: NotRequired[StrictStr | None]
    loanProductId: NotRequired[StrictInt | None]
    loanProductName: NotRequired[StrictStr | None]
    approvedPrincipal: NotRequired[Amount | None]
    netDisbursalAmount: NotRequired[Amount | None]
    timeline: NotRequired[_Timeline | None]
    summary: NotRequired[_Summary | None]


class _Page(TypedDict):
    totalFilteredRecords: StrictInt
    pageItems: list[_Loan]


_PAGE = pydantic.TypeAdapter(_Page)
_NONE: dict = {}


def read_page(tenant: str, content: bytes) -> ListingPage | None:
    """The page in one pass, or None when only the exact reader may decide about it."""
    if not numbers_read_exactly(content):
        return None
    try:
        page = _PAGE.validate_json(content)
    except pydantic.ValidationError:
        return None
    loans = [_loan(tenant, item) for item in page["pageItems"]]
    return ListingPage(total=page["totalFilteredRecords"], size=len(loans), loans=loans)


def _loan(tenant: str, item: _Loan) -> FineractLoan:
    """`LoanPayload.to_loan` for a validated typed dict (positional: 50,000 loans a cycle)."""
    status, get = item["status"], item.get
    timeline = get("timeline") or _NONE
    summary = get("summary") or _NONE
    return FineractLoan(
        tenant,
        item["id"],
        item["accountNo"],
        LoanStatus(status["id"], status["code"], status["value"]),
        item["currency"]["code"],
        item["principal"],
        get("externalId"),
        get("clientId"),
        get("clientName"),
        get("loanProductId"),
        get("loanProductName"),
        get("approvedPrincipal"),
        get("netDisbursalAmount"),
        timeline.get("submittedOnDate"),
        timeline.get("approvedOnDate"),
        timeline.get("expectedDisbursementDate"),
        timeline.get("actualDisbursementDate"),
        summary.get("totalOutstanding"),
    )
