"""Validating one payment row (CSV file or Launchpad), each failure with its reason code, the
field and the value.

Checks, in order (the first failure is the row's reason): required values present; UTR in a
format banks actually issue; amount a number in Indian or plain notation, in paise exactly
(integers, never float), within the bounds; paid date a date, not after the day the file was
received nor backdated more than the allowed days (both in IST); loan known and in a status that
accepts payments; UTR not already recorded nor earlier in the same file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from .collections import PAYABLE_STATUSES

REQUIRED_COLUMNS: tuple[str, ...] = ("utr", "loan_id", "amount", "paid_on")

# Reason codes of a rejected row (and of a rejected file, REASON_FILE_*).
MISSING_VALUE = "missing_value"
WRONG_COLUMN_COUNT = "wrong_column_count"
INVALID_UTR = "invalid_utr"
INVALID_AMOUNT = "invalid_amount"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
INVALID_DATE = "invalid_date"
FUTURE_DATE = "future_date"
BACKDATED = "backdated"
INVALID_LOAN_ID = "invalid_loan_id"
UNKNOWN_LOAN = "unknown_loan"
LOAN_NOT_PAYABLE = "loan_not_payable"
DUPLICATE_UTR_IN_FILE = "duplicate_utr_in_file"
DUPLICATE_UTR_RECORDED = "duplicate_utr_recorded"
ROW_REASONS = (
    MISSING_VALUE,
    WRONG_COLUMN_COUNT,
    INVALID_UTR,
    INVALID_AMOUNT,
    AMOUNT_OUT_OF_RANGE,
    INVALID_DATE,
    FUTURE_DATE,
    BACKDATED,
    INVALID_LOAN_ID,
    UNKNOWN_LOAN,
    LOAN_NOT_PAYABLE,
    DUPLICATE_UTR_IN_FILE,
    DUPLICATE_UTR_RECORDED,
)
FILE_NOT_CSV = "file_not_csv"
FILE_ENCODING = "file_encoding"
FILE_MISSING_COLUMNS = "file_missing_columns"

# Bank references as they look: NEFT UTR (IFSC bank code, N, 11 digits), RTGS UTR (bank code, R,
# channel digit, yyyymmdd, 8 digits) and the 12-digit RRN of IMPS and UPI payments.
UTR_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("NEFT", re.compile(r"[A-Z]{4}N\d{11}")),
    ("RTGS", re.compile(r"[A-Z]{4}R\d(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{8}")),
    ("UPI/IMPS", re.compile(r"\d{12}")),
)
# Any of them, in one match (a row needs only to know that its UTR is one of the three).
_ANY_UTR = re.compile("|".join(f"(?:{pattern.pattern})" for _, pattern in UTR_PATTERNS))

# Plain (1234567.89) or Indian-grouped (12,34,567.89): last group of three, then groups of two.
_PLAIN = re.compile(r"\d+(?:\.\d{1,2})?")
_INDIAN = re.compile(r"\d{1,2}(?:,\d{2})*,\d{3}(?:\.\d{1,2})?")
_CURRENCY_PREFIX = re.compile(r"^(?:₹|INR|RS\.?)\s*", re.IGNORECASE)


class AmountError(ValueError):
    """An amount that is not a number of rupees and paise (named in the message)."""


def normalise_utr(value: str) -> str:
    return value.strip().upper()


def utr_kind(value: str) -> str | None:
    """The kind of reference (NEFT, RTGS, UPI/IMPS), or None for a value no bank issues."""
    utr = normalise_utr(value)
    for kind, pattern in UTR_PATTERNS:
        if pattern.fullmatch(utr):
            return kind
    return None


def parse_amount_paise(text: str) -> int:
    """'1,00,000.50' → 10000050. Indian grouping or none, at most two decimals, never a float.
    A western-grouped '100,000' is refused rather than guessed."""
    value = text.strip()
    if not value[:1].isdigit():  # a prefix (₹, INR, Rs.) never starts with a digit
        value = _CURRENCY_PREFIX.sub("", value)
    if not (_PLAIN.fullmatch(value) or _INDIAN.fullmatch(value)):
        raise AmountError(f"amount {text!r} is not a number like 1,00,000.50 or 100000.50")
    # digits, then at most two decimals: rupees and paise in integers, exactly
    rupees, _, paise = value.replace(",", "").partition(".")
    return int(rupees) * 100 + int(paise.ljust(2, "0"))


def indian_grouping(rupees: int) -> str:
    """1000000 → '10,00,000': the last three digits, then groups of two."""
    digits = str(rupees)
    head, tail = digits[:-3], digits[-3:]
    groups = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return ",".join([*groups, tail])


def format_inr(amount_minor: int) -> str:
    """10000050 → '₹1,00,000.50' (Indian grouping, for metadata and messages)."""
    rupees, paise = divmod(abs(amount_minor), 100)
    return f"{'-' if amount_minor < 0 else ''}₹{indian_grouping(rupees)}.{paise:02d}"


_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_INDIAN_DATE = re.compile(r"(\d{2})[/-](\d{2})[/-](\d{4})")


@lru_cache(maxsize=1024)  # a file holds a few distinct dates for 100,000s of rows
def parse_paid_on(text: str) -> date:
    """YYYY-MM-DD, or DD/MM/YYYY and DD-MM-YYYY as Indian bank statements write it."""
    value = text.strip()
    refused = ValueError(f"paid_on {text!r} is not a date like 2026-11-30 or 30/11/2026")
    if match := _ISO_DATE.fullmatch(value):
        year, month, day = match.groups()
    elif match := _INDIAN_DATE.fullmatch(value):
        day, month, year = match.groups()
    else:
        raise refused
    try:
        return date(int(year), int(month), int(day))
    except ValueError:  # the right shape but no such day (2026-02-30)
        raise refused from None


@dataclass(frozen=True)
class Bounds:
    min_amount_minor: int = 100  # ₹1
    max_amount_minor: int = 1_00_00_000_00  # ₹1,00,00,000 (one crore)
    backdating_days: int = 7


@dataclass(frozen=True)
class AcceptedRow:
    row_number: int
    utr: str
    loan_id: int
    amount_minor: int
    paid_on: date


@dataclass(frozen=True)
class RejectedRow:
    row_number: int
    raw: Mapping[str, str]
    reason_code: str
    field: str | None
    value: str | None

    @property
    def message(self) -> str:
        return f"row {self.row_number}: {self.reason_code}: field {self.field!r} is {self.value!r}"


@dataclass(frozen=True)
class Validation:
    accepted: tuple[AcceptedRow, ...]
    rejected: tuple[RejectedRow, ...]
    by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def accepted_minor(self) -> int:
        return sum(row.amount_minor for row in self.accepted)


def check_row(
    raw: Mapping[str, str], row_number: int, received_on: date, bounds: Bounds
) -> AcceptedRow | RejectedRow:
    """The checks of one row that need nothing but the row and the day it was received."""

    if "_columns" in raw:  # the reader marks a row whose column count differs from the header
        return _reject(raw, row_number, WRONG_COLUMN_COUNT, "row", f"{raw['_columns']} columns")
    utr = (raw.get("utr") or "").strip()
    loan_id = (raw.get("loan_id") or "").strip()
    amount_text = (raw.get("amount") or "").strip()
    paid_on_text = (raw.get("paid_on") or "").strip()
    stripped = (utr, loan_id, amount_text, paid_on_text)
    if not all(stripped):
        for name, value in zip(REQUIRED_COLUMNS, stripped, strict=True):
            if not value:
                return _reject(raw, row_number, MISSING_VALUE, name, raw.get(name))
    if _ANY_UTR.fullmatch(utr.upper()) is None:
        return _reject(raw, row_number, INVALID_UTR, "utr", utr)
    try:
        amount = parse_amount_paise(amount_text)
    except AmountError:
        return _reject(raw, row_number, INVALID_AMOUNT, "amount", amount_text)
    if not bounds.min_amount_minor <= amount <= bounds.max_amount_minor:
        return _reject(raw, row_number, AMOUNT_OUT_OF_RANGE, "amount", amount_text)
    try:
        paid_on = parse_paid_on(paid_on_text)
    except ValueError:
        return _reject(raw, row_number, INVALID_DATE, "paid_on", paid_on_text)
    if paid_on > received_on:
        return _reject(raw, row_number, FUTURE_DATE, "paid_on", paid_on_text)
    if (received_on - paid_on).days > bounds.backdating_days:
        return _reject(raw, row_number, BACKDATED, "paid_on", paid_on_text)
    if not loan_id.isdigit() or len(loan_id) > 18:
        return _reject(raw, row_number, INVALID_LOAN_ID, "loan_id", loan_id)
    return AcceptedRow(row_number, utr.upper(), int(loan_id), amount, paid_on)


def _reject(
    raw: Mapping[str, str], row_number: int, code: str, name: str | None, value: str | None
) -> RejectedRow:
    return RejectedRow(row_number, dict(raw), code, name, value)


def validate_rows(
    rows: Sequence[Mapping[str, str]],
    *,
    received_on: date,
    loan_statuses: Mapping[int, str],
    recorded_utrs: Iterable[str],
    bounds: Bounds = Bounds(),
    first_row_number: int = 1,
) -> Validation:
    """Every row accepted or rejected (accepted + rejected = rows): `loan_statuses` and
    `recorded_utrs` are what the database holds for the loans and UTRs the rows name. Of rows
    sharing a UTR the first is checked, each later one is a duplicate in the file."""
    recorded = {normalise_utr(u) for u in recorded_utrs}
    seen: set[str] = set()
    accepted: list[AcceptedRow] = []
    rejected: list[RejectedRow] = []
    for offset, raw in enumerate(rows):
        result = check_row(raw, first_row_number + offset, received_on, bounds)
        if isinstance(result, AcceptedRow):
            status = loan_statuses.get(result.loan_id)
            if result.utr in recorded:
                result = RejectedRow(
                    result.row_number, dict(raw), DUPLICATE_UTR_RECORDED, "utr", result.utr
                )
            elif result.utr in seen:
                result = RejectedRow(
                    result.row_number, dict(raw), DUPLICATE_UTR_IN_FILE, "utr", result.utr
                )
            elif status is None:
                result = RejectedRow(
                    result.row_number, dict(raw), UNKNOWN_LOAN, "loan_id", str(result.loan_id)
                )
            elif status not in PAYABLE_STATUSES:
                result = RejectedRow(
                    result.row_number,
                    dict(raw),
                    LOAN_NOT_PAYABLE,
                    "loan_id",
                    f"{result.loan_id} ({status})",
                )
        if isinstance(result, AcceptedRow):
            seen.add(result.utr)
            accepted.append(result)
        else:
            rejected.append(result)
    by_reason: dict[str, int] = {}
    for row in rejected:
        by_reason[row.reason_code] = by_reason.get(row.reason_code, 0) + 1
    return Validation(tuple(accepted), tuple(rejected), by_reason)
