"""Fineract payloads (API_CONTRACTS.md §1), one pydantic model each: dates as `[y, m, d]`
arrays, omitted nulls, amounts as Decimal (JSON numbers are decoded as Decimal, never float),
ids as JSON integers. A payload that does not validate becomes a `FineractPayloadError` naming
tenant, loan, field and value; in a listing, a malformed loan becomes a `BadLoanRecord` and the
rest of its page is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import IntEnum
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import Field, StrictBool, StrictInt, StrictStr

from ...domain.tracked_loans import FineractLoan, LoanStatus
from ..payloads import MISSING, Expect, Payload, first_problem, refuse
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


# --- wire models -------------------------------------------------------------------------


def _ymd(value: Any) -> date:
    """Fineract's LocalDate: `[yyyy, m, d]`, three plain integers that make a day."""
    if type(value) is not list or len(value) != 3 or any(type(part) is not int for part in value):
        raise refuse("a date as [yyyy, m, d]")
    try:
        return date(*value)
    except ValueError:  # three integers that make no day ([2026, 2, 30])
        raise refuse("a date as [yyyy, m, d]") from None


Ymd = Annotated[date, pydantic.PlainValidator(_ymd), Expect("a date as [yyyy, m, d]")]
# A JSON number decoded as Decimal (an int when whole, a float from a decoder without
# parse_float=Decimal: taken through its shortest repr); a decimal string is accepted, a bool,
# NaN or an infinity is not.
Amount = Annotated[Decimal, pydantic.Field(allow_inf_nan=False)]


class StatusPayload(Payload):
    id: StrictInt
    code: StrictStr
    value: StrictStr


class CurrencyPayload(Payload):
    code: StrictStr


class TimelinePayload(Payload):
    submitted_on: Ymd | None = Field(None, alias="submittedOnDate")
    approved_on: Ymd | None = Field(None, alias="approvedOnDate")
    expected_disbursement_on: Ymd | None = Field(None, alias="expectedDisbursementDate")
    actual_disbursement_on: Ymd | None = Field(None, alias="actualDisbursementDate")


class SummaryPayload(Payload):
    """Only present from status 300 (active) on."""

    total_outstanding: Amount | None = Field(None, alias="totalOutstanding")


class LoanPayload(Payload):
    """One loan of `GET /loans` (pageItems, with `fields=LIST_FIELDS`) or `GET /loans/{id}`."""

    id: StrictInt
    account_no: StrictStr = Field(alias="accountNo")
    status: StatusPayload
    currency: CurrencyPayload
    principal: Amount
    external_id: StrictStr | None = Field(None, alias="externalId")
    client_id: StrictInt | None = Field(None, alias="clientId")
    client_name: StrictStr | None = Field(None, alias="clientName")
    product_id: StrictInt | None = Field(None, alias="loanProductId")
    product_name: StrictStr | None = Field(None, alias="loanProductName")
    approved_principal: Amount | None = Field(None, alias="approvedPrincipal")
    net_disbursal_amount: Amount | None = Field(None, alias="netDisbursalAmount")
    timeline: TimelinePayload | None = None
    summary: SummaryPayload | None = None

    def to_loan(self, tenant: str) -> FineractLoan:
        timeline = self.timeline or _NO_TIMELINE
        status = self.status
        return FineractLoan(
            tenant=tenant,
            id=self.id,
            account_no=self.account_no,
            status=LoanStatus(status.id, status.code, status.value),
            currency=self.currency.code,
            principal=self.principal,
            external_id=self.external_id,
            client_id=self.client_id,
            client_name=self.client_name,
            product_id=self.product_id,
            product_name=self.product_name,
            approved_principal=self.approved_principal,
            net_disbursal_amount=self.net_disbursal_amount,
            submitted_on=timeline.submitted_on,
            approved_on=timeline.approved_on,
            expected_disbursement_on=timeline.expected_disbursement_on,
            actual_disbursement_on=timeline.actual_disbursement_on,
            total_outstanding=self.summary.total_outstanding if self.summary else None,
        )


_NO_TIMELINE = TimelinePayload()


class LoanPagePayload(Payload):
    """The `GET /loans` envelope; its loans are validated one by one (a bad one is set aside)."""

    total_filtered_records: StrictInt = Field(alias="totalFilteredRecords")
    page_items: Annotated[list[Any], Expect("a list of loans")] = Field(alias="pageItems")


class LoanTransactionPayload(Payload):
    external_id: StrictStr | None = Field(None, alias="externalId")


class LoanTransactionsPayload(Payload):
    """`GET /loans/{id}?associations=transactions`: only the transactions are read."""

    transactions: (
        Annotated[list[LoanTransactionPayload], Expect("a list of transactions")] | None
    ) = None


class FineractBorrower(Payload):
    """`GET /clients/{id}`: a Fineract *client* (the borrower), the holder of the phone number."""

    id: StrictInt
    display_name: Annotated[StrictStr, pydantic.BeforeValidator(lambda v: v or "")] = Field(
        "", alias="displayName"
    )
    mobile_no: StrictStr | None = Field(None, alias="mobileNo")
    external_id: StrictStr | None = Field(None, alias="externalId")
    active: StrictBool = True


class CommandResult(Payload):
    """Fineract's CommandProcessingResult of a disburse / repayment command (nulls omitted);
    `served_from_cache` comes from the response header, not the body."""

    resource_id: StrictInt | None = Field(None, alias="resourceId")
    loan_id: StrictInt | None = Field(None, alias="loanId")
    sub_resource_id: StrictInt | None = Field(None, alias="subResourceId")
    sub_resource_external_id: StrictStr | None = Field(None, alias="subResourceExternalId")
    changes: Annotated[
        dict[str, Any], pydantic.BeforeValidator(lambda v: {} if v is None else v)
    ] = Field(default_factory=dict)
    _served_from_cache: bool = pydantic.PrivateAttr(False)

    @property
    def served_from_cache(self) -> bool:
        """Fineract replayed the stored answer of an earlier request with the same key."""
        return self._served_from_cache


# --- parsing -----------------------------------------------------------------------------


M = TypeVar("M", bound=Payload)


def validate(
    model: type[M], tenant: str, raw: Any, loan_id: int | None = None, prefix: str = ""
) -> M:
    """`raw` as `model`, or FineractPayloadError naming tenant, loan, field and value."""
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise payload_error(model, exc, tenant, loan_id, prefix) from None


def payload_error(
    model: type[Payload],
    exc: pydantic.ValidationError,
    tenant: str,
    loan_id: int | None,
    prefix: str = "",
) -> FineractPayloadError:
    problem = first_problem(model, exc)
    return FineractPayloadError(
        tenant=tenant,
        loan_id=loan_id,
        field=prefix + problem.field,
        # Fineract omits null fields: a missing field reads as None, as it would in Java.
        value=None if problem.value is MISSING else problem.value,
        expected=problem.expected,
    )


@dataclass
class ListingPage:
    total: int
    size: int  # loan objects on the page, parsed or not
    loans: list[FineractLoan] = field(default_factory=list)
    bad: list[BadLoanRecord] = field(default_factory=list)


def _loan_id_of(raw: Any) -> int | None:
    loan_id = raw.get("id") if isinstance(raw, dict) else None
    return loan_id if type(loan_id) is int else None


def parse_loan(tenant: str, raw: Any) -> FineractLoan:
    """One loan object from `GET /loans` (pageItems) or `GET /loans/{id}`."""
    try:
        return LoanPayload.model_validate(raw).to_loan(tenant)
    except pydantic.ValidationError as exc:
        raise payload_error(LoanPayload, exc, tenant, _loan_id_of(raw)) from None


def parse_page(tenant: str, body: Any) -> ListingPage:
    """One listing page; a malformed envelope fails it, a malformed loan only itself."""
    envelope = validate(LoanPagePayload, tenant, body)
    page = ListingPage(total=envelope.total_filtered_records, size=len(envelope.page_items))
    for item in envelope.page_items:
        try:
            page.loans.append(parse_loan(tenant, item))
        except FineractPayloadError as exc:
            page.bad.append(_bad_record(item, exc))
    return page


def _bad_record(item: Any, error: FineractPayloadError) -> BadLoanRecord:
    shown = repr(error.value)
    return BadLoanRecord(
        loan_id=_loan_id_of(item),
        field=error.field,
        value=shown if len(shown) <= 200 else shown[:197] + "...",
        expected=error.expected,
    )


def parse_transaction_external_ids(tenant: str, loan_id: int, raw: Any) -> list[str]:
    """The externalIds of a loan's transactions (those that have one)."""
    payload = validate(LoanTransactionsPayload, tenant, raw, loan_id)
    return [t.external_id for t in payload.transactions or () if t.external_id]


def parse_borrower(tenant: str, raw: Any) -> FineractBorrower:
    client_id = raw.get("id") if isinstance(raw, dict) else None
    prefix = f"client[{client_id}]." if type(client_id) is int else ""
    return validate(FineractBorrower, tenant, raw, prefix=prefix)


def parse_command_result(
    tenant: str, loan_id: int, raw: Any, served_from_cache: bool
) -> CommandResult:
    result = validate(CommandResult, tenant, raw, loan_id)
    result._served_from_cache = served_from_cache
    return result


def format_command_date(day: date) -> str:
    """`03 October 2024` — JAVA_DATE_FORMAT in locale `en`, independent of the process locale."""
    return f"{day.day:02d} {_MONTHS[day.month - 1]} {day.year}"


def idempotency_key(action: str, loan_id: int, reference: str) -> str:
    """Fineract scopes keys by (action, entity, key) only — not by loan — so the key must name
    the loan, or the same reference used on two loans would replay the first loan's result."""
    return f"{action}-loan-{loan_id}-{reference}"
