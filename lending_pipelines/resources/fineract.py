"""Apache Fineract / Mifos X: the partner's core-banking API (multi-tenant, HTTP Basic).

`FineractClient` is a plain client for one partner (one tenant) usable without Dagster; the
polling asset builds one per partner row with `FineractResource.client_for(...)`, which carries
the resource's timeout, paging and retry settings. Listing has an async variant so many partners
can be polled concurrently over one shared `httpx.AsyncClient`.

Wire facts (see API_CONTRACTS.md §1): dates are `[y, m, d]` arrays, null fields are omitted,
amounts are JSON numbers (parsed here as Decimal, never float), `httpStatusCode` in error bodies
is a string. `GET /loans` returns everything when `limit` is missing, so a limit is always sent
and pages are walked until `offset >= totalFilteredRecords` or the first empty or short page,
whichever comes first: a server whose total lies is not followed into thousands of empty pages,
and the mismatch is reported. A malformed loan is set aside as a bad record (loan id, field,
value) while the rest of its page is kept. Servers before 1.9 have no `status`
parameter (they silently ignore it) but take `sqlSearch`; the filter mode is configuration, and
every page is also filtered client-side so a wrong mode can never let other statuses through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Any, Literal

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from lending_pipelines.domain.backoff import backoff_delay

log = logging.getLogger(__name__)

API_PREFIX = "/fineract-provider/api/v1"
TENANT_HEADER = "Fineract-Platform-TenantId"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SERVED_FROM_CACHE_HEADER = "x-served-from-cache"
# Dates in command bodies are strings in this Java pattern + locale (both are required).
JAVA_DATE_FORMAT = "dd MMMM yyyy"
LOCALE = "en"
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
# 409 = loan locked by the close-of-business job / optimistic lock, 425 = the same idempotency
# key is still being processed, 429 = a proxy in front of the server is throttling.
RETRYABLE_STATUSES = frozenset({409, 425, 429})

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


# --- errors ------------------------------------------------------------------------------


class FineractError(Exception):
    """A failed Fineract call. `retryable` says whether the same call may succeed later."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        tenant: str,
        status_code: int | None = None,
        error_codes: tuple[str, ...] = (),
        loan_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.status_code = status_code
        self.error_codes = error_codes
        self.loan_id = loan_id


class FineractRetryableError(FineractError):
    """409 loan locked, 425 in progress, 429, 5xx, timeouts, connection errors, cut bodies."""

    retryable = True


class FineractFinalError(FineractError):
    """400 validation, 401 bad credentials, 403 rule/permission, 404 unknown loan."""


class FineractPayloadError(FineractFinalError):
    """A response that parsed as JSON but does not have the shape Fineract documents."""

    def __init__(
        self, *, tenant: str, loan_id: int | None, field: str, value: object, expected: str
    ) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        subject = f"loan {loan_id}" if loan_id is not None else "response"
        super().__init__(
            f"Fineract tenant {tenant!r} {subject}: field {field!r} is {shown}, "
            f"expected {expected}",
            tenant=tenant,
            loan_id=loan_id,
        )
        self.field = field
        self.value = value


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


def error_from_response(tenant: str, what: str, response: httpx.Response) -> FineractError:
    """Classify a non-2xx response and build a message from Fineract's ApiGlobalErrorResponse."""
    status = response.status_code
    codes: list[str] = []
    detail = ""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        top = body.get("userMessageGlobalisationCode")
        if isinstance(top, str):
            codes.append(top)
        for item in body.get("errors") or []:
            if isinstance(item, dict) and isinstance(item.get("userMessageGlobalisationCode"), str):
                codes.append(item["userMessageGlobalisationCode"])
        nested = [
            item.get("defaultUserMessage")
            for item in body.get("errors") or []
            if isinstance(item, dict) and item.get("defaultUserMessage")
        ]
        detail = "; ".join(str(m) for m in nested) or str(body.get("defaultUserMessage") or "")
    if status == 401:
        detail = detail or "authentication failed (check the partner's username and password)"
    message = f"Fineract tenant {tenant!r} {what}: HTTP {status}"
    if codes:
        message += f" {codes[-1]}"
    if detail:
        message += f": {detail[:300]}"
    error_class = (
        FineractRetryableError
        if status in RETRYABLE_STATUSES or status >= 500
        else FineractFinalError
    )
    return error_class(message, tenant=tenant, status_code=status, error_codes=tuple(codes))


# --- the client --------------------------------------------------------------------------


@dataclass(frozen=True)
class FineractConfig:
    """Connection and behaviour settings for one partner (tenant)."""

    base_url: str
    tenant_id: str
    username: str
    password: str = field(repr=False)
    filter_mode: FilterMode = "status"
    page_size: int = 100
    page_concurrency: int = 4
    timeout_seconds: float = 10.0
    max_attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 8.0

    def __post_init__(self) -> None:
        if self.filter_mode not in ("status", "sqlSearch"):
            raise ValueError(
                f"Fineract tenant {self.tenant_id!r}: filter_mode is {self.filter_mode!r}, "
                "expected 'status' (Fineract >= 1.9) or 'sqlSearch' (older)"
            )
        for name in ("page_size", "page_concurrency", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"Fineract tenant {self.tenant_id!r}: {name} is {getattr(self, name)!r}, "
                    "expected >= 1"
                )
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"Fineract tenant {self.tenant_id!r}: base_url {self.base_url!r} is not an "
                "http(s) URL"
            )


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None

    def describe(self) -> str:
        return f"{self.method} {self.path}"


class FineractClient:
    """HTTP client for one Fineract tenant. Sync methods use a lazily created `httpx.Client`;
    `alist_loans` takes a shared `httpx.AsyncClient` (or makes its own)."""

    def __init__(self, config: FineractConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        config = self.config
        return f"FineractClient(tenant={config.tenant_id!r}, base_url={config.base_url!r})"

    @property
    def tenant(self) -> str:
        return self.config.tenant_id

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> FineractClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- request plumbing (shared by sync and async) ---------------------------------------

    def _request_kwargs(self, call: _Call) -> dict[str, Any]:
        headers = {TENANT_HEADER: self.config.tenant_id, "Accept": "application/json"}
        headers.update(call.headers or {})
        return {
            "method": call.method,
            "url": self.config.base_url.rstrip("/") + API_PREFIX + call.path,
            "params": dict(call.params or {}),
            "json": dict(call.body) if call.body is not None else None,
            "headers": headers,
            "auth": httpx.BasicAuth(self.config.username, self.config.password),
            "timeout": self.config.timeout_seconds,
        }

    def _decode(self, call: _Call, response: httpx.Response) -> Any:
        if response.status_code >= 300:
            raise error_from_response(self.tenant, call.describe(), response)
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise FineractRetryableError(
                f"Fineract tenant {self.tenant!r} {call.describe()}: HTTP {response.status_code} "
                f"with a body that is not valid JSON ({len(response.content)} bytes)",
                tenant=self.tenant,
                status_code=response.status_code,
            ) from None

    def _transport_error(self, call: _Call, exc: httpx.TransportError) -> FineractRetryableError:
        if isinstance(exc, httpx.TimeoutException):
            reason = f"timed out after {self.config.timeout_seconds}s ({type(exc).__name__})"
        else:
            reason = f"connection failed ({type(exc).__name__})"
        return FineractRetryableError(
            f"Fineract tenant {self.tenant!r} {call.describe()}: {reason}", tenant=self.tenant
        )

    def _next_delay(self, call: _Call, attempt: int, error: FineractError) -> float:
        delay = backoff_delay(
            attempt,
            base=self.config.backoff_base_seconds,
            cap=self.config.backoff_max_seconds,
            jitter=0.25,
            rand=self._rng.random(),
        )
        log.warning(
            "Fineract tenant %r %s attempt %d/%d failed (%s); retrying in %.2fs",
            self.tenant, call.describe(), attempt, self.config.max_attempts, error, delay,
        )  # fmt: skip
        return delay

    def _send(self, call: _Call) -> tuple[Any, httpx.Response]:
        if self._http is None:
            self._http = httpx.Client()
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                response = self._http.request(**self._request_kwargs(call))
                return self._decode(call, response), response
            except httpx.TransportError as exc:
                error: FineractError = self._transport_error(call, exc)
            except FineractRetryableError as exc:
                error = exc
            if attempt == self.config.max_attempts:
                raise error
            time.sleep(self._next_delay(call, attempt, error))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _asend(self, http: httpx.AsyncClient, call: _Call) -> Any:
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                response = await http.request(**self._request_kwargs(call))
                return self._decode(call, response)
            except httpx.TransportError as exc:
                error: FineractError = self._transport_error(call, exc)
            except FineractRetryableError as exc:
                error = exc
            if attempt == self.config.max_attempts:
                raise error
            await asyncio.sleep(self._next_delay(call, attempt, error))
        raise AssertionError("unreachable: the loop returns or raises")

    # --- listing -------------------------------------------------------------------------

    def _page_call(self, status: int, offset: int) -> _Call:
        params: dict[str, str | int] = {
            "offset": offset,
            "limit": self.config.page_size,
            "orderBy": "id",
            "sortOrder": "ASC",
            "fields": LIST_FIELDS,
        }
        if self.config.filter_mode == "status":
            params["status"] = status
        else:
            params["sqlSearch"] = f"l.loan_status_id={int(status)}"
        return _Call("GET", "/loans", params=params)

    def _parse_page(self, body: Any) -> _Page:
        """One page; a malformed page fails the listing, a malformed loan only itself."""
        f = _Fields(self.tenant, None, body)
        total = f.integer("totalFilteredRecords")
        items = body.get("pageItems")
        if not isinstance(items, list):
            raise FineractPayloadError(
                tenant=self.tenant, loan_id=None, field="pageItems", value=items,
                expected="a list of loans",
            )  # fmt: skip
        page = _Page(total=total, size=len(items))
        for item in items:
            try:
                page.loans.append(parse_loan(self.tenant, item))
            except FineractPayloadError as exc:
                page.bad.append(_bad_record(item, exc))
        return page

    def _is_last(self, page: _Page, offset: int) -> bool:
        """No page after this one: the total is reached, or the page came back short."""
        return page.size < self.config.page_size or offset + page.size >= page.total

    def _listing(self, status: int, pages: list[_Page], total: int) -> LoanListing:
        seen: dict[int, FineractLoan] = {}
        dropped = 0
        for page in pages:
            for loan in page.loans:
                if loan.status.id != status:
                    dropped += 1
                else:
                    seen.setdefault(loan.id, loan)
        received = sum(page.size for page in pages)
        if received != total:
            log.warning(
                "Fineract tenant %r reported totalFilteredRecords=%d but its pages held %d "
                "loan(s)", self.tenant, total, received,
            )  # fmt: skip
        if dropped:
            log.warning(
                "Fineract tenant %r returned %d loan(s) with a status other than %d; is "
                "filter_mode %r right for this server version?",
                self.tenant, dropped, status, self.config.filter_mode,
            )  # fmt: skip
        return LoanListing(
            tenant=self.tenant,
            loans=list(seen.values()),
            total_reported=total,
            pages=len(pages),
            other_status_dropped=dropped,
            bad_records=[bad for page in pages for bad in page.bad],
            records_received=received,
        )

    def list_loans(self, status: int = LoanStatusId.APPROVED) -> LoanListing:
        """Every loan in `status`, page by page until the total or a short page."""
        pages: list[_Page] = []
        offset = 0
        while True:
            body, _ = self._send(self._page_call(status, offset))
            page = self._parse_page(body)
            pages.append(page)
            if self._is_last(page, offset):
                break
            offset += self.config.page_size
        return self._listing(status, pages, pages[0].total)

    async def alist_loans(
        self, status: int = LoanStatusId.APPROVED, *, http: httpx.AsyncClient | None = None
    ) -> LoanListing:
        """Like `list_loans`; after the first page the remaining pages are fetched concurrently
        (at most `page_concurrency` at once). Offset paging can shift while loans change state
        between pages; loans are de-duplicated by id and anything missed is seen next poll."""
        if http is None:
            async with httpx.AsyncClient() as own:
                return await self.alist_loans(status, http=own)
        size = self.config.page_size
        pages = [self._parse_page(await self._asend(http, self._page_call(status, 0)))]
        total = pages[0].total

        async def fetch(offset: int) -> _Page:
            return self._parse_page(await self._asend(http, self._page_call(status, offset)))

        # Waves of `page_concurrency` pages, stopping at the first short page: a total that
        # claims a million loans costs one wave past the real end, not ten thousand requests.
        offset = 0
        while not self._is_last(pages[-1], offset):
            offsets = range(offset + size, total, size)[: self.config.page_concurrency]
            wave = await asyncio.gather(*(fetch(o) for o in offsets))
            for o, page in zip(offsets, wave, strict=True):
                pages.append(page)
                offset = o
                if self._is_last(page, o):
                    break
        return self._listing(status, pages, total)

    # --- single objects ------------------------------------------------------------------

    def get_loan(self, loan_id: int) -> FineractLoan:
        body, _ = self._send(_Call("GET", f"/loans/{int(loan_id)}"))
        return parse_loan(self.tenant, body)

    def loan_transaction_external_ids(self, loan_id: int) -> list[str]:
        """The externalIds of a loan's transactions (`GET /loans/{id}?associations=
        transactions`): tells our disbursement from one made another way."""
        call = _Call("GET", f"/loans/{int(loan_id)}", params={"associations": "transactions"})
        body, _ = self._send(call)
        transactions = body.get("transactions") if isinstance(body, dict) else None
        if transactions is None:
            return []
        if not isinstance(transactions, list):
            raise FineractPayloadError(
                tenant=self.tenant, loan_id=loan_id, field="transactions", value=transactions,
                expected="a list of transactions",
            )  # fmt: skip
        return [
            str(t["externalId"])
            for t in transactions
            if isinstance(t, dict) and t.get("externalId")
        ]

    def get_borrower(self, client_id: int) -> FineractBorrower:
        """The Fineract client behind a loan: loan rows carry no phone number, clients do."""
        body, _ = self._send(_Call("GET", f"/clients/{int(client_id)}"))
        return parse_borrower(self.tenant, body)

    # --- commands ------------------------------------------------------------------------

    def disburse(
        self,
        loan_id: int,
        *,
        on: date,
        reference: str,
        transaction_external_id: str | None = None,
        amount: Decimal | None = None,
        receipt_number: str | None = None,
        payment_type_id: int | None = None,
        note: str | None = None,
    ) -> CommandResult:
        """`POST /loans/{id}?command=disburse`. `reference` (e.g. the M-Pesa transaction id) goes
        into the Idempotency-Key together with the loan id, so a retry replays instead of
        disbursing twice; `transaction_external_id` defaults to `mpesa-<reference>`."""
        body: dict[str, Any] = {
            "actualDisbursementDate": format_command_date(on),
            "dateFormat": JAVA_DATE_FORMAT,
            "locale": LOCALE,
            "externalId": transaction_external_id or f"mpesa-{reference}",
        }
        if amount is not None:
            body["transactionAmount"] = _wire_amount(amount)
        if receipt_number is not None:
            body["receiptNumber"] = receipt_number
        if payment_type_id is not None:
            body["paymentTypeId"] = payment_type_id
        if note is not None:
            body["note"] = note[:1000]
        key = idempotency_key("disburse", loan_id, reference)
        return self._command_at(f"/loans/{int(loan_id)}", "disburse", loan_id, body, key)

    def repay(
        self,
        loan_id: int,
        *,
        amount: Decimal,
        on: date,
        reference: str,
        transaction_external_id: str | None = None,
        receipt_number: str | None = None,
        payment_type_id: int | None = None,
        note: str | None = None,
    ) -> CommandResult:
        """`POST /loans/{id}/transactions?command=repayment`; `resourceId` is the transaction."""
        if amount <= 0:
            raise ValueError(f"Fineract tenant {self.tenant!r} loan {loan_id}: amount {amount}")
        body: dict[str, Any] = {
            "transactionDate": format_command_date(on),
            "transactionAmount": _wire_amount(amount),
            "dateFormat": JAVA_DATE_FORMAT,
            "locale": LOCALE,
            "externalId": transaction_external_id or f"repayment-{reference}",
        }
        if receipt_number is not None:
            body["receiptNumber"] = receipt_number
        if payment_type_id is not None:
            body["paymentTypeId"] = payment_type_id
        if note is not None:
            body["note"] = note[:1000]
        key = idempotency_key("repayment", loan_id, reference)
        path = f"/loans/{int(loan_id)}/transactions"
        return self._command_at(path, "repayment", loan_id, body, key)

    def _command_at(
        self, path: str, command: str, loan_id: int, body: dict[str, Any], key: str
    ) -> CommandResult:
        call = _Call(
            "POST", path, params={"command": command}, body=body,
            headers={IDEMPOTENCY_HEADER: key},
        )  # fmt: skip
        raw, response = self._send(call)
        cached = response.headers.get(SERVED_FROM_CACHE_HEADER, "").lower() == "true"
        return parse_command_result(self.tenant, loan_id, raw, cached)


def _wire_amount(amount: Decimal) -> int | float:
    """JSON has no decimal type: whole amounts go as ints, others as the exact decimal string's
    float (Fineract parses numbers with BigDecimal; two decimal places survive the round trip)."""
    if amount == amount.to_integral_value():
        return int(amount)
    return float(amount.quantize(Decimal("0.01")))


# --- the Dagster resource ----------------------------------------------------------------


class FineractResource(ConfigurableResource):
    """Fineract settings shared by every partner, plus an optional default partner.

    Partners live in the database (`partners` table); the polling asset calls `client_for` per
    partner row. The connection fields here describe one partner for jobs that talk to a single
    server and may stay empty in the code location's default resource."""

    base_url: str | None = Field(default=None, description="e.g. https://host:8443 (no path)")
    tenant_id: str | None = Field(default=None, description="Fineract-Platform-TenantId")
    username: str | None = None
    password: str | None = Field(default=None, repr=False, description="Secret: use EnvVar")
    filter_mode: FilterMode = Field(
        default="status", description="'status' on Fineract >= 1.9, 'sqlSearch' before 1.9"
    )
    page_size: int = Field(default=100, ge=1, le=1000)
    page_concurrency: int = Field(default=4, ge=1, description="Pages fetched at once per partner")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per HTTP request")
    max_attempts: int = Field(default=4, ge=1, description="Attempts for retryable errors")
    backoff_base_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=8.0, ge=0)

    def client_for(
        self,
        *,
        base_url: str,
        tenant_id: str,
        username: str,
        password: str,
        filter_mode: FilterMode | None = None,
    ) -> FineractClient:
        """A client for one partner with this resource's paging, timeout and retry settings."""
        return FineractClient(
            FineractConfig(
                base_url=base_url,
                tenant_id=tenant_id,
                username=username,
                password=password,
                filter_mode=filter_mode or self.filter_mode,
                page_size=self.page_size,
                page_concurrency=self.page_concurrency,
                timeout_seconds=self.timeout_seconds,
                max_attempts=self.max_attempts,
                backoff_base_seconds=self.backoff_base_seconds,
                backoff_max_seconds=self.backoff_max_seconds,
            )
        )

    def client(self) -> FineractClient:
        """The client for the partner configured on the resource itself."""
        missing = [
            name
            for name in ("base_url", "tenant_id", "username", "password")
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(f"FineractResource has no default partner: {missing} not set")
        return self.client_for(
            base_url=self.base_url,
            tenant_id=self.tenant_id,
            username=self.username,
            password=self.password,
        )
