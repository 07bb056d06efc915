"""Blnk ledger (github.com/blnkfinance/blnk) over HTTP (no Dagster).

Money moves only through transactions carrying a deterministic, unique `reference`: Blnk keeps a
unique index on it, so posting the same reference twice can never move money twice. Posts use
`skip_queue: true` by default, so the answer is synchronous (APPLIED, 409 duplicate, 400
insufficient funds) instead of a 201 QUEUED whose outcome arrives later as a `<ref>_q` child.

A duplicate reference (409 `TXN_DUPLICATE_REFERENCE` on >= 0.15, or the older 400
`{"error": "reference X has already been used"}`) means "already applied": the client reads the
transaction by reference and returns it with `already_applied=True`. Insufficient funds is a
distinct final error. 5xx, 429, 423, timeouts and unreadable bodies are retried with exponential
backoff; everything else is final. Both error shapes are parsed: >= 0.15
`{"error": ..., "error_detail": {"code": ...}}` and legacy `{"error": "..."}` (or `"errors"`).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any
from urllib.parse import quote

import httpx

from ...domain.backoff import backoff_delay
from .errors import (
    ALREADY_COMMITTED,
    ALREADY_VOIDED,
    DUPLICATE_REFERENCE,
    INSUFFICIENT_FUNDS,
    PARTNER,
    RETRYABLE_CODES,
    RETRYABLE_STATUSES,
    BlnkAuthError,
    BlnkConflictError,
    BlnkError,
    BlnkFinalError,
    BlnkInsufficientFundsError,
    BlnkNotFoundError,
    BlnkRetryableError,
    ParsedError,
    parse_error_body,
)
from .models import (
    BlnkBalance,
    BlnkLedger,
    BlnkTransaction,
    LedgerOutcome,
    PostedTransaction,
    parse_balance,
    parse_ledger,
    parse_transaction,
)

logger = logging.getLogger(__name__)


class BlnkClient:
    """Client for one Blnk server. Amounts are integers in minor units (`precise_amount`)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff_seconds: float = 0.2,
        backoff_cap_seconds: float = 5.0,
        skip_queue: bool = True,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.skip_queue = skip_queue
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:  # never the API key
        return f"BlnkClient(base_url={self.base_url!r})"

    # -- plumbing --------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        if self._http is None:
            headers = {"Accept": "application/json"}
            if self.api_key:
                headers["X-Blnk-Key"] = self.api_key
            self._http = httpx.Client(
                base_url=self.base_url.rstrip("/"), timeout=self.timeout, headers=headers
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def _error(self, response: httpx.Response, what: str) -> BlnkError:
        try:
            parsed = parse_error_body(response.json())
        except ValueError:
            parsed = ParsedError(None, response.text[:300])
        status, code = response.status_code, parsed.code
        text = self._redact(
            f"{PARTNER} {what}: HTTP {status}"
            + (f" {code}" if code else "")
            + (f": {parsed.message}" if parsed.message else "")
        )
        if status in RETRYABLE_STATUSES or code in RETRYABLE_CODES or status >= 500:
            return BlnkRetryableError(text, status=status, code=code)
        if code == INSUFFICIENT_FUNDS:
            return BlnkInsufficientFundsError(text, status=status, code=code)
        if status == 404 or (code or "").endswith("NOT_FOUND"):
            return BlnkNotFoundError(text, status=status, code=code)
        if status in (401, 403) or (code or "").startswith("AUTH_"):
            return BlnkAuthError(text, status=status, code=code)
        if code in (ALREADY_COMMITTED, ALREADY_VOIDED, "GEN_CONFLICT", "TXN_NOT_INFLIGHT"):
            return BlnkConflictError(text, status=status, code=code)
        return BlnkFinalError(text, status=status, code=code)

    def _request(
        self, method: str, path: str, what: str, json_body: dict | None = None
    ) -> tuple[Any, BlnkError | None]:
        """Send with retries. Returns (body, None) on 2xx or (None, final error) on a final 4xx;
        raises BlnkRetryableError once retries are exhausted."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._client().request(method, path, json=json_body)
            except httpx.TimeoutException as exc:
                error: BlnkError = BlnkRetryableError(
                    f"{PARTNER} {what}: timed out after {self.timeout}s ({type(exc).__name__})"
                )
            except httpx.TransportError as exc:
                error = BlnkRetryableError(
                    f"{PARTNER} {what}: connection failed ({type(exc).__name__})"
                )
            else:
                if response.is_success:
                    try:
                        return response.json(), None
                    except ValueError:
                        error = BlnkRetryableError(
                            f"{PARTNER} {what}: HTTP {response.status_code} with an unreadable "
                            f"JSON body ({len(response.content)} bytes)",
                            status=response.status_code,
                        )
                else:
                    error = self._error(response, what)
                    if not error.retryable:
                        return None, error
            if attempt > self.retries:
                logger.error("%s failed after %d attempt(s): %s", what, attempt, error)
                raise error
            delay = backoff_delay(
                attempt,
                base=self.backoff_seconds,
                cap=self.backoff_cap_seconds,
                jitter=0.25,
                rand=random.random(),
            )
            logger.warning(
                "%s attempt %d failed (%s); retrying in %.2fs", what, attempt, error, delay
            )
            time.sleep(delay)

    def _call(self, method: str, path: str, what: str, json_body: dict | None = None) -> Any:
        body, error = self._request(method, path, what, json_body)
        if error is not None:
            raise error
        return body

    # -- ledgers and balances --------------------------------------------------------------

    def create_ledger(self, name: str, meta_data: dict[str, Any] | None = None) -> BlnkLedger:
        body = {"name": name, "meta_data": meta_data or {}}
        return parse_ledger(self._call("POST", "/ledgers", f"create ledger {name!r}", body), name)

    def get_ledger(self, ledger_id: str) -> BlnkLedger:
        path = f"/ledgers/{quote(ledger_id, safe='')}"
        return parse_ledger(self._call("GET", path, f"get ledger {ledger_id!r}"), ledger_id)

    def create_balance(
        self,
        ledger_id: str,
        currency: str,
        *,
        precision: int | None = None,
        identity_id: str | None = None,
        indicator: str | None = None,
        meta_data: dict[str, Any] | None = None,
    ) -> BlnkBalance:
        body: dict[str, Any] = {"ledger_id": ledger_id, "currency": currency}
        optional = {
            "precision": precision,
            "identity_id": identity_id,
            "indicator": indicator,
            "meta_data": meta_data,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        what = f"create balance in ledger {ledger_id!r} ({currency})"
        return parse_balance(self._call("POST", "/balances", what, body), indicator or ledger_id)

    def get_balance(self, balance_id: str) -> BlnkBalance:
        path = f"/balances/{quote(balance_id, safe='')}"
        return parse_balance(self._call("GET", path, f"get balance {balance_id!r}"), balance_id)

    def get_balance_by_indicator(self, indicator: str, currency: str) -> BlnkBalance:
        path = f"/balances/indicator/{quote(indicator, safe='')}/currency/{quote(currency)}"
        what = f"get balance {indicator!r} ({currency})"
        return parse_balance(self._call("GET", path, what), indicator)

    # -- transactions --------------------------------------------------------------------------

    def get_transaction(self, transaction_id: str) -> BlnkTransaction:
        path = f"/transactions/{quote(transaction_id, safe='')}"
        what = f"get transaction {transaction_id!r}"
        return parse_transaction(self._call("GET", path, what), transaction_id)

    def get_transaction_by_reference(self, reference: str) -> BlnkTransaction:
        path = f"/transactions/reference/{quote(reference, safe='')}"
        what = f"get transaction by reference {reference!r}"
        return parse_transaction(self._call("GET", path, what), reference)

    def find_transaction_by_reference(self, reference: str) -> BlnkTransaction | None:
        """The transaction with this reference, or None when the ledger has none."""
        try:
            return self.get_transaction_by_reference(reference)
        except BlnkNotFoundError:
            return None

    def create_transaction(
        self,
        *,
        reference: str,
        source: str,
        destination: str,
        precise_amount: int,
        currency: str,
        description: str,
        precision: int = 100,
        allow_overdraft: bool = False,
        inflight: bool = False,
        meta_data: dict[str, Any] | None = None,
        skip_queue: bool | None = None,
    ) -> PostedTransaction:
        """Post a transfer of `precise_amount` minor units; `reference` is the idempotency key.

        A duplicate reference returns the existing transaction with `already_applied=True`
        (whatever amount it carries: the ledger is the truth). Raises
        BlnkInsufficientFundsError, BlnkFinalError (validation) or BlnkRetryableError.
        """
        if not reference:
            raise ValueError("a Blnk transaction needs a non-empty reference")
        if not description:
            raise ValueError(f"transaction {reference!r}: description is required by Blnk")
        if isinstance(precise_amount, bool) or not isinstance(precise_amount, int):
            raise TypeError(
                f"transaction {reference!r}: precise_amount is {precise_amount!r}, "
                "expected an integer in minor units"
            )
        if precise_amount <= 0:
            raise ValueError(
                f"transaction {reference!r}: precise_amount is {precise_amount}, expected > 0"
            )
        body: dict[str, Any] = {
            "reference": reference,
            "source": source,
            "destination": destination,
            "precise_amount": precise_amount,
            "precision": precision,
            "currency": currency,
            "description": description,
            "allow_overdraft": allow_overdraft,
            "inflight": inflight,
            "skip_queue": self.skip_queue if skip_queue is None else skip_queue,
            "meta_data": meta_data or {},
        }
        what = f"post transaction {reference!r}"
        response, error = self._request("POST", "/transactions", what, body)
        if error is None:
            return PostedTransaction(parse_transaction(response, reference), already_applied=False)
        if error.code != DUPLICATE_REFERENCE:
            raise error
        existing = self.get_transaction_by_reference(reference)
        if (existing.precise_amount, existing.currency) != (precise_amount, currency):
            logger.warning(
                "transaction %r was already applied with %s %s; this post asked for %s %s "
                "(the ledger's amount stands)",
                reference,
                existing.precise_amount,
                existing.currency,
                precise_amount,
                currency,
            )
        return PostedTransaction(existing, already_applied=True)

    def queued_outcome(self, reference: str) -> BlnkTransaction | None:
        """For a post made with `skip_queue=False`: the `<reference>_q` child that carries the
        real outcome (APPLIED, INFLIGHT or REJECTED), or None while it is still queued."""
        return self.find_transaction_by_reference(f"{reference}_q")

    def resolve(self, posted: PostedTransaction) -> LedgerOutcome:
        """The outcome of a post: a QUEUED answer (ours, or the stored parent of a duplicate)
        is never the outcome; the `<ref>_q` child is, once the queue has processed it."""
        txn = posted.transaction
        if txn.status != "QUEUED":
            return LedgerOutcome(txn.reference, txn, posted.already_applied)
        child = self.queued_outcome(txn.reference)
        # A dropped duplicate answers QUEUED with a fresh id: the child's parent is the
        # earlier post's, so the outcome is recovered, not ours.
        recovered = posted.already_applied or (
            child is not None and child.parent_transaction != txn.transaction_id
        )
        return LedgerOutcome(txn.reference, child, recovered, queued=txn)

    def transfer(self, **post: Any) -> LedgerOutcome:
        """`create_transaction(**post)`, then its outcome read back (see `resolve`)."""
        return self.resolve(self.create_transaction(**post))

    def read_outcome(self, reference: str) -> LedgerOutcome | None:
        """What the ledger holds for `reference` (through `<ref>_q` when it was queued), or
        None when the ledger has no transaction with that reference."""
        txn = self.find_transaction_by_reference(reference)
        if txn is None:
            child = self.queued_outcome(reference)
            return None if child is None else LedgerOutcome(reference, child, True)
        return self.resolve(PostedTransaction(txn, already_applied=True))

    # -- inflight ----------------------------------------------------------------------------

    def _update_inflight(
        self, transaction_id: str, status: str, precise_amount: int | None
    ) -> PostedTransaction:
        body: dict[str, Any] = {"status": status, "skip_queue": self.skip_queue}
        if precise_amount is not None:
            body["precise_amount"] = precise_amount
        path = f"/transactions/inflight/{quote(transaction_id, safe='')}"
        what = f"{status} inflight transaction {transaction_id!r}"
        response, error = self._request("PUT", path, what, body)
        if error is None:
            return PostedTransaction(parse_transaction(response, transaction_id), False)
        done = ALREADY_COMMITTED if status == "commit" else ALREADY_VOIDED
        if error.code != done:
            raise error
        # A retry after an ambiguous failure of our own first attempt lands here too.
        return PostedTransaction(self.get_transaction(transaction_id), already_applied=True)

    def commit_inflight(
        self, transaction_id: str, precise_amount: int | None = None
    ) -> PostedTransaction:
        """Commit an inflight hold, fully or `precise_amount` of it. Committing an already
        committed hold returns the inflight transaction with `already_applied=True`."""
        return self._update_inflight(transaction_id, "commit", precise_amount)

    def void_inflight(self, transaction_id: str) -> PostedTransaction:
        """Release the remaining hold. An already voided hold gives `already_applied=True`."""
        return self._update_inflight(transaction_id, "void", None)
