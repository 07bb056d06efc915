"""Fineract payloads as typed values and their parsing (API_CONTRACTS.md §1): dates as
`[y, m, d]` arrays, omitted nulls, amounts as Decimal (never float); a malformed loan becomes
a `BadLoanRecord` naming its field and value. The fast path parses well-formed loans without
per-field checks and falls back to the checked parser on the first surprise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Any, Literal

from .errors import FineractPayloadError

# Dates in command bodies are strings in this Java pattern + locale (both are required).
JAVA_DATE_FORMAT = "dd MMMM yyyy"
LOCALE = "en"
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
FilterMode = Literal["status", "sqlSearch"]
# Partial response (`fields=`): the top-level fields `parse_loan` reads. A loan is ~1 KB in
# full; listing thousands of them per partner, the rest is transfer and parsing for nothing.
LIST_FIELDS = (
    "id,accountNo,externalId,status,clientId,clientName,loanProductId,loanProductName,"
    "currency,principal,approvedPrincipal,netDisbursalAmount,timeline,summary"
)


class LoanStatusId(IntEnum):
    """Fineract's numeric loan statuses (enum LoanStatus)."""

    INVALID = 0
    SUBMITTED_AND_PENDING_APPROVAL = 100
    APPROVED = 200
    ACTIVE = 300
    TRANSFER_IN_PROGRESS = 303
    TRANSFER_ON_HOLD = 304
    WITHDRAWN_BY_CLIENT = 400
    REJECTED = 500
    CLOSED_OBLIGATIONS_MET = 600
    CLOSED_WRITTEN_OFF = 601
    CLOSED_RESCHEDULED = 602
    OVERPAID = 700


# --- typed responses ---------------------------------------------------------------------


@dataclass(slots=True)
class LoanStatus:
    id: int
    code: str
    value: str


@dataclass(slots=True)
class FineractLoan:
    tenant: str
    id: int
    account_no: str
    status: LoanStatus
    currency: str
    principal: Decimal
    external_id: str | None = None
    client_id: int | None = None
    client_name: str | None = None
    product_id: int | None = None
    product_name: str | None = None
    approved_principal: Decimal | None = None
    net_disbursal_amount: Decimal | None = None
    submitted_on: date | None = None
    approved_on: date | None = None
    expected_disbursement_on: date | None = None
    actual_disbursement_on: date | None = None
    total_outstanding: Decimal | None = None

    @property
    def disbursal_amount(self) -> Decimal:
        """What the borrower receives: net of up-front charges when Fineract computed it."""
        if self.net_disbursal_amount is not None:
            return self.net_disbursal_amount
        return self.approved_principal if self.approved_principal is not None else self.principal


@dataclass(frozen=True)
class FineractBorrower:
    """A Fineract *client* (the borrower), the holder of the phone number."""

    tenant: str
    id: int
    display_name: str
    mobile_no: str | None = None
    external_id: str | None = None
    active: bool = True


@dataclass(frozen=True)
class CommandResult:
    """Fineract's CommandProcessingResult (nulls omitted on the wire)."""

    resource_id: int | None
    loan_id: int | None = None
    sub_resource_id: int | None = None
    sub_resource_external_id: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    served_from_cache: bool = False


@dataclass(frozen=True)
class BadLoanRecord:
    """A loan in a listing that could not be parsed: set aside, named, never silently lost."""

    loan_id: int | None
    field: str
    value: str
    expected: str


@dataclass(frozen=True)
class LoanListing:
    """All loans of one status for one tenant, and how the listing went."""

    tenant: str
    loans: list[FineractLoan]
    total_reported: int
    pages: int
    other_status_dropped: int = 0
    bad_records: list[BadLoanRecord] = field(default_factory=list)
    # Loan objects the pages actually carried (parsed or not), to compare with total_reported.
    records_received: int = 0

    @property
    def total_mismatch(self) -> bool:
        """The server's totalFilteredRecords differs from what its pages held."""
        return self.records_received != self.total_reported


# --- parsing -----------------------------------------------------------------------------


class _Fields:
    """Reads typed fields from one JSON object, naming tenant, loan and field on failure."""

    def __init__(self, tenant: str, loan_id: int | None, raw: Any, prefix: str = "") -> None:
        if not isinstance(raw, dict):
            raise FineractPayloadError(
                tenant=tenant, loan_id=loan_id, field=prefix or "body", value=raw,
                expected="a JSON object",
            )  # fmt: skip
        self.tenant, self.loan_id, self.raw, self.prefix = tenant, loan_id, raw, prefix

    def _fail(self, name: str, value: object, expected: str) -> FineractPayloadError:
        return FineractPayloadError(
            tenant=self.tenant, loan_id=self.loan_id, field=self.prefix + name, value=value,
            expected=expected,
        )  # fmt: skip

    def obj(self, name: str, required: bool = True) -> _Fields | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self._fail(name, value, "an object")
            return None
        return _Fields(self.tenant, self.loan_id, value, f"{self.prefix}{name}.")

    def integer(self, name: str, required: bool = True) -> int | None:
        value = self.raw.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool):
            raise self._fail(name, value, "an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise self._fail(name, value, "an integer")

    def text(self, name: str, required: bool = True) -> str | None:
        value = self.raw.get(name)
        if value is None and not required:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self._fail(name, value, "a string")

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw.get(name, default)
        if isinstance(value, bool):
            return value
        raise self._fail(name, value, "true or false")

    def amount(self, name: str, required: bool = True) -> Decimal | None:
        value = self.raw.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool):
            raise self._fail(name, value, "a decimal")
        try:
            amount = Decimal(str(value)) if isinstance(value, int | float | str) else value
        except InvalidOperation:
            raise self._fail(name, value, "a decimal") from None
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise self._fail(name, value, "a decimal")
        return amount

    def day(self, name: str) -> date | None:
        value = self.raw.get(name)
        if value is None:
            return None
        expected = "a date as [yyyy, m, d]"
        try:
            if (
                isinstance(value, list)
                and len(value) == 3
                and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
            ):
                return date(value[0], value[1], value[2])
            if isinstance(value, str):
                return date.fromisoformat(value)
        except ValueError:
            raise self._fail(name, value, expected) from None
        raise self._fail(name, value, expected)


@dataclass
class _Page:
    total: int
    size: int  # loan objects on the page, parsed or not
    loans: list[FineractLoan] = field(default_factory=list)
    bad: list[BadLoanRecord] = field(default_factory=list)


def _bad_record(item: Any, error: FineractPayloadError) -> BadLoanRecord:
    loan_id = item.get("id") if isinstance(item, dict) else None
    shown = repr(error.value)
    return BadLoanRecord(
        loan_id=loan_id if isinstance(loan_id, int) and not isinstance(loan_id, bool) else None,
        field=error.field,
        value=shown if len(shown) <= 200 else shown[:197] + "...",
        expected=str(error).rsplit("expected ", 1)[-1],
    )


def parse_loan(tenant: str, raw: Any) -> FineractLoan:
    """One loan object from `GET /loans` (pageItems) or `GET /loans/{id}`.

    Polling parses tens of thousands of loans per cycle, so well-formed loans take a fast path
    of exact type checks; anything it does not accept goes through the field-by-field parser,
    which accepts the same values and names the offending field when it refuses one."""
    try:
        return _parse_loan_fast(tenant, raw)
    except _NotFast:
        return _parse_loan_checked(tenant, raw)


class _NotFast(Exception):
    """The fast path saw something unusual; the checked path decides."""


def _fast_day(value: Any) -> date | None:
    if value is None:
        return None
    if type(value) is list and len(value) == 3:
        year, month, day = value
        if type(year) is int and type(month) is int and type(day) is int:
            try:
                return date(year, month, day)
            except ValueError:
                raise _NotFast from None
    raise _NotFast


def _fast_amount(value: Any) -> Decimal | None:
    kind = type(value)
    if kind is Decimal:
        if value.is_finite():
            return value
        raise _NotFast
    if kind is int:
        return Decimal(value)
    if value is None:
        return None
    raise _NotFast


def _fast_optional(value: Any, kind: type) -> Any:
    if value is None or type(value) is kind:
        return value
    raise _NotFast


def _parse_loan_fast(tenant: str, raw: Any) -> FineractLoan:
    if type(raw) is not dict:
        raise _NotFast
    get = raw.get
    status, currency = get("status"), get("currency")
    timeline, summary = get("timeline") or {}, get("summary") or {}
    if not (
        type(status) is dict
        and type(currency) is dict
        and type(timeline) is dict
        and type(summary) is dict
    ):
        raise _NotFast
    loan_id, account_no, principal = get("id"), get("accountNo"), get("principal")
    status_id, code, value = status.get("id"), status.get("code"), status.get("value")
    currency_code = currency.get("code")
    if not (
        type(loan_id) is int
        and type(account_no) is str
        and type(status_id) is int
        and type(code) is str
        and type(value) is str
        and type(currency_code) is str
        and principal is not None
    ):
        raise _NotFast
    return FineractLoan(
        tenant=tenant,
        id=loan_id,
        account_no=account_no,
        status=LoanStatus(status_id, code, value),
        currency=currency_code,
        principal=_fast_amount(principal),
        external_id=_fast_optional(get("externalId"), str),
        client_id=_fast_optional(get("clientId"), int),
        client_name=_fast_optional(get("clientName"), str),
        product_id=_fast_optional(get("loanProductId"), int),
        product_name=_fast_optional(get("loanProductName"), str),
        approved_principal=_fast_amount(get("approvedPrincipal")),
        net_disbursal_amount=_fast_amount(get("netDisbursalAmount")),
        submitted_on=_fast_day(timeline.get("submittedOnDate")),
        approved_on=_fast_day(timeline.get("approvedOnDate")),
        expected_disbursement_on=_fast_day(timeline.get("expectedDisbursementDate")),
        actual_disbursement_on=_fast_day(timeline.get("actualDisbursementDate")),
        total_outstanding=_fast_amount(summary.get("totalOutstanding")),
    )


def _parse_loan_checked(tenant: str, raw: Any) -> FineractLoan:
    loan_id = _Fields(tenant, None, raw).integer("id")
    f = _Fields(tenant, loan_id, raw)
    status = f.obj("status")
    timeline = f.obj("timeline", required=False)
    currency = f.obj("currency")
    summary = f.obj("summary", required=False)
    return FineractLoan(
        tenant=tenant,
        id=loan_id,
        account_no=f.text("accountNo"),
        status=LoanStatus(
            id=status.integer("id"), code=status.text("code"), value=status.text("value")
        ),
        currency=currency.text("code"),
        principal=f.amount("principal"),
        external_id=f.text("externalId", required=False),
        client_id=f.integer("clientId", required=False),
        client_name=f.text("clientName", required=False),
        product_id=f.integer("loanProductId", required=False),
        product_name=f.text("loanProductName", required=False),
        approved_principal=f.amount("approvedPrincipal", required=False),
        net_disbursal_amount=f.amount("netDisbursalAmount", required=False),
        submitted_on=timeline.day("submittedOnDate") if timeline else None,
        approved_on=timeline.day("approvedOnDate") if timeline else None,
        expected_disbursement_on=timeline.day("expectedDisbursementDate") if timeline else None,
        actual_disbursement_on=timeline.day("actualDisbursementDate") if timeline else None,
        total_outstanding=summary.amount("totalOutstanding", required=False) if summary else None,
    )


def parse_borrower(tenant: str, raw: Any) -> FineractBorrower:
    client_id = _Fields(tenant, None, raw).integer("id")
    f = _Fields(tenant, None, raw, prefix=f"client[{client_id}].")
    return FineractBorrower(
        tenant=tenant,
        id=client_id,
        display_name=f.text("displayName", required=False) or "",
        mobile_no=f.text("mobileNo", required=False),
        external_id=f.text("externalId", required=False),
        active=f.flag("active", default=True),
    )


def parse_command_result(
    tenant: str, loan_id: int, raw: Any, served_from_cache: bool
) -> CommandResult:
    f = _Fields(tenant, loan_id, raw)
    changes = raw.get("changes") or {}
    if not isinstance(changes, dict):
        raise FineractPayloadError(
            tenant=tenant, loan_id=loan_id, field="changes", value=changes, expected="an object"
        )
    return CommandResult(
        resource_id=f.integer("resourceId", required=False),
        loan_id=f.integer("loanId", required=False),
        sub_resource_id=f.integer("subResourceId", required=False),
        sub_resource_external_id=f.text("subResourceExternalId", required=False),
        changes=changes,
        served_from_cache=served_from_cache,
    )


def format_command_date(day: date) -> str:
    """`03 October 2024` — JAVA_DATE_FORMAT in locale `en`, independent of the process locale."""
    return f"{day.day:02d} {_MONTHS[day.month - 1]} {day.year}"


def idempotency_key(action: str, loan_id: int, reference: str) -> str:
    """Fineract scopes keys by (action, entity, key) only — not by loan — so the key must name
    the loan, or the same reference used on two loans would replay the first loan's result."""
    return f"{action}-loan-{loan_id}-{reference}"
