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
and the mismatch is reported. A page is read in one pass from its bytes when it is plainly
well-formed (`listing.read_page`); otherwise the exact way, where a malformed loan is set aside as
a bad record (loan id, field, value) while the rest of its page is kept. Servers before 1.9
have no `status` parameter (they silently ignore it) but take `sqlSearch`; the filter mode is
configuration, and every page is also filtered client-side so a wrong mode can never let other
statuses through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from lending_pipelines.domain.backoff import backoff_delay

from .config import FineractConfig
from .errors import (
    FineractError,
    FineractRetryableError,
    error_from_response,
)
from .listing import read_page
from .models import (
    JAVA_DATE_FORMAT,
    LIST_FIELDS,
    LOCALE,
    CommandResult,
    FineractBorrower,
    FineractLoan,
    ListingPage,
    LoanListing,
    LoanStatusId,
    format_command_date,
    idempotency_key,
    parse_borrower,
    parse_command_result,
    parse_loan,
    parse_page,
    parse_transaction_external_ids,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

API_PREFIX = "/fineract-provider/api/v1"
TENANT_HEADER = "Fineract-Platform-TenantId"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SERVED_FROM_CACHE_HEADER = "x-served-from-cache"


# --- the client --------------------------------------------------------------------------


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
        return self._send_reading(call, lambda c, response: (self._decode(c, response), response))

    def _send_page(self, call: _Call) -> ListingPage:
        return self._send_reading(call, self._read_page)

    def _send_reading(self, call: _Call, read: Callable[[_Call, httpx.Response], T]) -> T:
        if self._http is None:
            self._http = httpx.Client()
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                response = self._http.request(**self._request_kwargs(call))
                return read(call, response)
            except httpx.TransportError as exc:
                error: FineractError = self._transport_error(call, exc)
            except FineractRetryableError as exc:
                error = exc
            if attempt == self.config.max_attempts:
                raise error
            time.sleep(self._next_delay(call, attempt, error))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _asend(
        self,
        http: httpx.AsyncClient,
        call: _Call,
        read: Callable[[_Call, httpx.Response], Any] | None = None,
    ) -> Any:
        """`call`'s decoded JSON body, or what `read(call, response)` makes of the response."""
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                response = await http.request(**self._request_kwargs(call))
                return (read or self._decode)(call, response)
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

    def _parse_page(self, body: Any) -> ListingPage:
        """One page; a malformed page fails the listing, a malformed loan only itself."""
        return parse_page(self.tenant, body)

    def _read_page(self, call: _Call, response: httpx.Response) -> ListingPage:
        """A well-formed page in one pass from its bytes; any other page (or an error answer)
        the exact way: decoded, then validated loan by loan."""
        if response.status_code < 300:
            page = read_page(self.tenant, response.content)
            if page is not None:
                return page
        return self._parse_page(self._decode(call, response))

    def _is_last(self, page: ListingPage, offset: int) -> bool:
        """No page after this one: the total is reached, or the page came back short."""
        return page.size < self.config.page_size or offset + page.size >= page.total

    def _listing(self, status: int, pages: list[ListingPage], total: int) -> LoanListing:
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
        pages: list[ListingPage] = []
        offset = 0
        while True:
            page = self._send_page(self._page_call(status, offset))
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
        pages = [await self._asend(http, self._page_call(status, 0), self._read_page)]
        total = pages[0].total

        async def fetch(offset: int) -> ListingPage:
            return await self._asend(http, self._page_call(status, offset), self._read_page)

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
        return parse_transaction_external_ids(self.tenant, loan_id, body)

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
