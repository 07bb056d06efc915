"""Blnk ledger (github.com/blnkfinance/blnk) as a Dagster resource.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from ..domain.backoff import backoff_delay

logger = logging.getLogger(__name__)

PARTNER = "blnk"

# Error codes (internal/apierror/codes.go) and the legacy messages that map to them
# (api/errors.go messagePatterns), most specific first.
DUPLICATE_REFERENCE = "TXN_DUPLICATE_REFERENCE"
INSUFFICIENT_FUNDS = "TXN_INSUFFICIENT_FUNDS"
ALREADY_COMMITTED = "TXN_ALREADY_COMMITTED"
ALREADY_VOIDED = "TXN_ALREADY_VOIDED"
LEGACY_MESSAGE_CODES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("transaction", "not found"), "TXN_NOT_FOUND"),
    (("not in inflight status",), "TXN_NOT_INFLIGHT"),
    (("already committed",), ALREADY_COMMITTED),
    (("already been voided",), ALREADY_VOIDED),
    (("has already been used",), DUPLICATE_REFERENCE),
    (("cannot commit more than",), "TXN_COMMIT_AMOUNT_EXCEEDED"),
    (("insufficient funds",), INSUFFICIENT_FUNDS),
    (("amount must be positive",), "TXN_INVALID_AMOUNT"),
    (("status not supported",), "TXN_INVALID_STATUS_ACTION"),
    (("rate limit",), "GEN_RATE_LIMITED"),
    (("api key",), "AUTH_INVALID_API_KEY"),
    (("not found",), "GEN_NOT_FOUND"),
)
RETRYABLE_CODES = {"GEN_RATE_LIMITED", "GEN_RESOURCE_LOCKED", "GEN_INTERNAL"}
RETRYABLE_STATUSES = {423, 429, 500, 502, 503, 504}


class BlnkError(Exception):
    """A Blnk call failed. `retryable` says whether the same call may succeed later."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BlnkRetryableError(BlnkError):
    """5xx, 429, 423, a timeout or an unreadable body: the call may be repeated."""

    retryable = True


class BlnkFinalError(BlnkError):
    """A 4xx the caller must not repeat unchanged."""


class BlnkInsufficientFundsError(BlnkFinalError):
    """The source balance cannot cover the amount (and overdraft is not allowed)."""


class BlnkNotFoundError(BlnkFinalError):
    """No ledger, balance or transaction with that id / reference."""


class BlnkConflictError(BlnkFinalError):
    """The inflight transaction is in a state that refuses this action (e.g. commit after void)."""


class BlnkAuthError(BlnkFinalError):
    """The API key is missing, invalid or lacks the permission."""


class BlnkPayloadError(BlnkError):
    """A 2xx body whose fields do not have the documented types."""


@dataclass(frozen=True)
class BlnkLedger:
    ledger_id: str
    name: str
    meta_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BlnkBalance:
    """A balance; every amount is an integer in minor units."""

    balance_id: str
    ledger_id: str
    currency: str
    balance: int
    credit_balance: int
    debit_balance: int
    inflight_balance: int
    inflight_credit_balance: int
    inflight_debit_balance: int
    indicator: str | None = None
    identity_id: str | None = None
    version: int | None = None
    meta_data: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> int:
        """What can still be debited: the balance less funds held by inflight debits."""
        return self.balance - self.inflight_debit_balance


@dataclass(frozen=True)
class BlnkTransaction:
    transaction_id: str
    reference: str
    status: str
    precise_amount: int
    precision: int
    currency: str
    source: str
    destination: str
    description: str = ""
    parent_transaction: str = ""
    meta_data: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None

    @property
    def rejection_reason(self) -> str | None:
        reason = self.meta_data.get("blnk_rejection_reason")
        return None if reason is None else str(reason)


@dataclass(frozen=True)
class PostedTransaction:
    """The outcome of a post: the ledger's transaction, and whether it existed already."""

    transaction: BlnkTransaction
    already_applied: bool


@dataclass(frozen=True)
class LedgerOutcome:
    """What the ledger did with a reference, read back after a post or on its own.

    `transaction` is the row that carries the outcome: the transaction itself, or for a post
    that went through Blnk's queue the `<ref>_q` child (APPLIED, INFLIGHT or REJECTED); None
    while the queue has not processed it yet (`awaiting`). `queued` is the QUEUED parent, if
    any. `recovered`: the outcome belongs to an earlier post of the same reference.
    """

    reference: str
    transaction: BlnkTransaction | None
    recovered: bool
    queued: BlnkTransaction | None = None

    @property
    def awaiting(self) -> bool:
        return self.transaction is None

    def differences(
        self, *, amount: int, currency: str, source: str, destination: str
    ) -> list[str]:
        """How the outcome differs from the transfer we meant (empty: it matches, or it is
        still awaited)."""
        txn = self.transaction
        if txn is None:
            return []
        expected = {
            "precise_amount": amount,
            "currency": currency,
            "source": source,
            "destination": destination,
        }
        found = {
            "precise_amount": txn.precise_amount,
            "currency": txn.currency,
            "source": txn.source,
            "destination": txn.destination,
        }
        return [
            f"{name} is {found[name]!r}, expected {value!r}"
            for name, value in expected.items()
            if found[name] != value
        ]


# --- parsing -------------------------------------------------------------------------------


def _payload_error(kind: str, obj_id: object, name: str, value: object, expected: str) -> Exception:
    return BlnkPayloadError(
        f"{PARTNER} {kind} {obj_id!r}: field {name!r} is {value!r}, expected {expected}"
    )


def _int_field(kind: str, obj: Mapping[str, Any], obj_id: object, name: str, default=None) -> int:
    """An integer amount. Blnk serialises big.Int as a JSON number; a digit string is accepted."""
    value = obj.get(name, default)
    if isinstance(value, bool):
        raise _payload_error(kind, obj_id, name, value, "an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().removeprefix("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _payload_error(kind, obj_id, name, value, "an integer")


def _str_field(
    kind: str, obj: Mapping[str, Any], obj_id: object, name: str, *, required: bool = True
) -> str:
    value = obj.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _payload_error(kind, obj_id, name, value, "a non-empty string")
    return value


def _meta(kind: str, obj: Mapping[str, Any], obj_id: object) -> dict[str, Any]:
    value = obj.get("meta_data")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _payload_error(kind, obj_id, "meta_data", value, "an object")
    return value


def _object(kind: str, body: Any, hint: object) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise BlnkPayloadError(f"{PARTNER} {kind} {hint!r}: body is {body!r}, expected an object")
    return body


def parse_ledger(body: Any, hint: object = None) -> BlnkLedger:
    obj = _object("ledger", body, hint)
    ledger_id = _str_field("ledger", obj, hint, "ledger_id")
    return BlnkLedger(
        ledger_id=ledger_id,
        name=_str_field("ledger", obj, ledger_id, "name", required=False),
        meta_data=_meta("ledger", obj, ledger_id),
    )


def parse_balance(body: Any, hint: object = None) -> BlnkBalance:
    obj = _object("balance", body, hint)
    balance_id = _str_field("balance", obj, hint, "balance_id")

    def amount(name: str) -> int:
        return _int_field("balance", obj, balance_id, name, default=0)

    version = obj.get("version")
    return BlnkBalance(
        balance_id=balance_id,
        ledger_id=_str_field("balance", obj, balance_id, "ledger_id", required=False),
        currency=_str_field("balance", obj, balance_id, "currency"),
        balance=_int_field("balance", obj, balance_id, "balance"),
        credit_balance=amount("credit_balance"),
        debit_balance=amount("debit_balance"),
        inflight_balance=amount("inflight_balance"),
        inflight_credit_balance=amount("inflight_credit_balance"),
        inflight_debit_balance=amount("inflight_debit_balance"),
        indicator=obj.get("indicator") or None,
        identity_id=obj.get("identity_id") or None,
        version=None if version is None else _int_field("balance", obj, balance_id, "version"),
        meta_data=_meta("balance", obj, balance_id),
    )


def _precise_amount(obj: Mapping[str, Any], txn_id: str, precision: int) -> int:
    """`precise_amount` (minor units) or, when a server omits it, `amount` x `precision`."""
    if obj.get("precise_amount") is not None:
        return _int_field("transaction", obj, txn_id, "precise_amount")
    raw = obj.get("amount")
    try:
        scaled = Decimal(str(raw)) * precision
    except (InvalidOperation, TypeError):
        raise _payload_error("transaction", txn_id, "amount", raw, "a number") from None
    if isinstance(raw, bool) or scaled != scaled.to_integral_value():
        raise _payload_error("transaction", txn_id, "amount", raw, f"a multiple of 1/{precision}")
    return int(scaled)


def parse_transaction(body: Any, hint: object = None) -> BlnkTransaction:
    obj = _object("transaction", body, hint)
    txn_id = _str_field("transaction", obj, hint, "transaction_id")
    precision = _int_field("transaction", obj, txn_id, "precision", default=1)
    if precision < 1:
        raise _payload_error("transaction", txn_id, "precision", precision, "an integer >= 1")
    return BlnkTransaction(
        transaction_id=txn_id,
        reference=_str_field("transaction", obj, txn_id, "reference"),
        status=_str_field("transaction", obj, txn_id, "status").upper(),
        precise_amount=_precise_amount(obj, txn_id, precision),
        precision=precision,
        currency=_str_field("transaction", obj, txn_id, "currency"),
        source=_str_field("transaction", obj, txn_id, "source", required=False),
        destination=_str_field("transaction", obj, txn_id, "destination", required=False),
        description=_str_field("transaction", obj, txn_id, "description", required=False),
        parent_transaction=_str_field(
            "transaction", obj, txn_id, "parent_transaction", required=False
        ),
        meta_data=_meta("transaction", obj, txn_id),
        created_at=obj.get("created_at"),
    )


@dataclass(frozen=True)
class ParsedError:
    code: str | None
    message: str


def parse_error_body(body: Any) -> ParsedError:
    """Read either error shape. >= 0.15: branch on `error_detail.code`; legacy: on the message."""
    if not isinstance(body, dict):
        return ParsedError(None, "" if body is None else str(body)[:300])
    legacy = body.get("error", body.get("errors"))
    if isinstance(legacy, dict):  # admin endpoints nest the APIError under "error"
        legacy = legacy.get("message", legacy)
    if isinstance(legacy, list):
        legacy = "; ".join(str(item) for item in legacy)
    message = "" if legacy is None else str(legacy)
    detail = body.get("error_detail")
    if isinstance(detail, dict) and detail.get("code"):
        return ParsedError(str(detail["code"]), str(detail.get("message") or message))
    lowered = message.lower()
    for needles, code in LEGACY_MESSAGE_CODES:
        if all(needle in lowered for needle in needles):
            return ParsedError(code, message)
    return ParsedError(None, message)


# --- the resource ------------------------------------------------------------------------


class BlnkResource(ConfigurableResource):
    """Client for one Blnk server. Amounts are integers in minor units (`precise_amount`)."""

    base_url: str = Field(description="e.g. http://localhost:5001, or the sandbox's /blnk prefix.")
    api_key: str | None = Field(
        default=None,
        repr=False,
        description="Sent as X-Blnk-Key (only enforced when the server runs in secure mode).",
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP request.")
    retries: int = Field(default=3, ge=0, description="Extra attempts for retryable failures.")
    backoff_seconds: float = Field(default=0.2, ge=0, description="First retry delay.")
    backoff_cap_seconds: float = Field(default=5.0, ge=0)
    skip_queue: bool = Field(
        default=True,
        description="Process posts synchronously (APPLIED / 409 / 400) instead of QUEUED.",
    )

    _http: httpx.Client | None = PrivateAttr(default=None)

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

    def teardown_after_execution(self, context) -> None:
        self.close()

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
