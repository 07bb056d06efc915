"""Stripe Connect: connected-account checks, platform balance, transfers and reversals.

Thin wrapper over the official SDK (stripe 16, `StripeClient`). What it adds:

* the caller's idempotency key on every transfer (business idempotency, not the SDK's UUID);
* a client-side request-rate limit (`RateLimiter`), shared across workers when the caller
  passes a shared limiter (the payout workers use one stored in PostgreSQL);
* 429 handling: the SDK does not retry rate-limited requests, so we do, with exponential
  backoff; connection errors, 409 and 5xx are retried by the SDK with the same key;
* error classification into `StripeErrorKind`, so callers decide retry / final / unknown
  from one typed field instead of exception classes.

The API key never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import stripe
from dagster import ConfigurableResource
from pydantic import Field

from ..domain.backoff import backoff_delay

log = logging.getLogger(__name__)

PARTNER = "stripe"


class StripeErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"  # 429: never processed, safe to resend with the same key
    CONNECTION = "connection"  # network failure: the request may or may not have run
    SERVER = "server"  # 5xx: may have run; a stored 500 replays for the same key
    CONFLICT = "conflict"  # 409: a request with the same key is still running
    IDEMPOTENCY = "idempotency"  # same key, different parameters: a caller bug, final
    BALANCE_INSUFFICIENT = "balance_insufficient"  # platform available balance too low
    INVALID_ACCOUNT = "invalid_account"  # unknown, closed or restricted destination
    INVALID_REQUEST = "invalid_request"  # any other 400/404
    AUTHENTICATION = "authentication"  # bad API key (401)
    PERMISSION = "permission"  # key lacks permission (403)


RETRYABLE_KINDS = frozenset(
    {
        StripeErrorKind.RATE_LIMITED,
        StripeErrorKind.CONNECTION,
        StripeErrorKind.SERVER,
        StripeErrorKind.CONFLICT,
    }
)
# Kinds after which Stripe may have executed the request: only a replay with the same key (or a
# lookup by transfer group) tells what happened.
OUTCOME_UNKNOWN_KINDS = frozenset(
    {StripeErrorKind.CONNECTION, StripeErrorKind.SERVER, StripeErrorKind.CONFLICT}
)
# Error codes Stripe uses for a destination that cannot receive the transfer.
INVALID_ACCOUNT_CODES = frozenset(
    {
        "account_invalid",
        "account_closed",
        "insufficient_capabilities_for_transfer",
        "transfers_not_allowed",
    }
)


class StripeConnectError(Exception):
    """A Stripe call that failed, classified. `str()` names the operation and the object."""

    def __init__(
        self,
        kind: StripeErrorKind,
        message: str,
        *,
        operation: str,
        object_id: str | None = None,
        http_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        replayed: bool = False,
    ) -> None:
        self.kind = kind
        self.operation = operation
        self.object_id = object_id
        self.http_status = http_status
        self.code = code
        self.param = param
        self.request_id = request_id
        self.replayed = replayed
        self.detail = message
        target = f" {object_id}" if object_id else ""
        super().__init__(
            f"stripe {operation}{target}: {kind.value}"
            f"{f' ({code})' if code else ''}"
            f"{f' http {http_status}' if http_status else ''}"
            f"{f' request {request_id}' if request_id else ''}: {message}"
        )

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def outcome_unknown(self) -> bool:
        return self.kind in OUTCOME_UNKNOWN_KINDS


def classify_stripe_exception(exc: stripe.StripeError) -> StripeErrorKind:
    """Map an SDK exception to our kind (see API_CONTRACTS §3.4 for the SDK's own mapping)."""
    if isinstance(exc, stripe.RateLimitError):
        return StripeErrorKind.RATE_LIMITED
    if isinstance(exc, stripe.APIConnectionError):
        return StripeErrorKind.CONNECTION
    if isinstance(exc, stripe.IdempotencyError):
        return StripeErrorKind.IDEMPOTENCY
    if isinstance(exc, stripe.AuthenticationError):
        return StripeErrorKind.AUTHENTICATION
    if isinstance(exc, stripe.PermissionError):
        return StripeErrorKind.PERMISSION
    if isinstance(exc, stripe.InvalidRequestError):
        if exc.code == "balance_insufficient":
            return StripeErrorKind.BALANCE_INSUFFICIENT
        if exc.code in INVALID_ACCOUNT_CODES or exc.param == "destination":
            return StripeErrorKind.INVALID_ACCOUNT
        return StripeErrorKind.INVALID_REQUEST
    status = exc.http_status or 0
    if status == 409:
        return StripeErrorKind.CONFLICT
    if status == 429:
        return StripeErrorKind.RATE_LIMITED
    if status >= 500 or isinstance(exc, stripe.APIError):
        return StripeErrorKind.SERVER
    return StripeErrorKind.INVALID_REQUEST


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


# --- rate limiting -----------------------------------------------------------------------------


class RateLimiter(Protocol):
    def acquire(self) -> None:
        """Block until one more request may be sent."""


class InProcessRateLimiter:
    """Requests spaced at 1/rate seconds (generic cell rate algorithm), thread-safe.

    Shared by the threads of one process; workers in several processes need a shared limiter
    such as `lending_pipelines.db.payouts.PostgresRateLimiter`.
    """

    def __init__(
        self,
        requests_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second is {requests_per_second!r}, expected > 0")
        self.interval = 1.0 / requests_per_second
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class NoRateLimit:
    def acquire(self) -> None:
        return None


# --- typed results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectAccountStatus:
    account_id: str
    payouts_enabled: bool
    transfers_capability: str | None  # active | inactive | pending | None (not requested)
    details_submitted: bool
    currently_due: tuple[str, ...] = ()
    past_due: tuple[str, ...] = ()
    disabled_reason: str | None = None

    @property
    def can_receive_transfers(self) -> bool:
        return self.payouts_enabled and self.transfers_capability == "active"

    @property
    def requirements_due(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.past_due + self.currently_due))

    def ineligibility_reason(self) -> str | None:
        """Why payouts to this account cannot be made now, or None."""
        if not self.payouts_enabled:
            return f"payouts disabled ({self.disabled_reason or 'no reason given'})"
        if self.transfers_capability != "active":
            return f"transfers capability is {self.transfers_capability or 'not requested'}"
        return None


@dataclass(frozen=True)
class Transfer:
    id: str
    amount: int
    currency: str
    destination: str
    transfer_group: str | None
    created: int
    amount_reversed: int = 0
    reversed: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    replayed: bool = False  # answered from Stripe's idempotency store


@dataclass(frozen=True)
class TransferReversal:
    id: str
    transfer_id: str
    amount: int
    currency: str


def _int_field(obj: Any, name: str, operation: str, object_id: str | None) -> int:
    value = obj.get(name) if hasattr(obj, "get") else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StripeConnectError(
            StripeErrorKind.INVALID_REQUEST,
            f"field {name!r} is {value!r}, expected an integer amount in minor units",
            operation=operation,
            object_id=object_id,
        )
    return value


def _to_transfer(obj: Any, operation: str, replayed: bool = False) -> Transfer:
    transfer_id = obj.get("id")
    if not isinstance(transfer_id, str) or not transfer_id.startswith("tr_"):
        raise StripeConnectError(
            StripeErrorKind.INVALID_REQUEST,
            f"field 'id' is {transfer_id!r}, expected a transfer id 'tr_...'",
            operation=operation,
        )
    metadata = obj.get("metadata") or {}
    return Transfer(
        id=transfer_id,
        amount=_int_field(obj, "amount", operation, transfer_id),
        currency=str(obj.get("currency") or ""),
        destination=str(obj.get("destination") or ""),
        transfer_group=obj.get("transfer_group"),
        created=_int_field(obj, "created", operation, transfer_id),
        amount_reversed=int(obj.get("amount_reversed") or 0),
        reversed=bool(obj.get("reversed")),
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
        replayed=replayed,
    )


# --- the client ------------------------------------------------------------------------------


class StripeConnectClient:
    """One configured SDK client plus our rate limit, 429 retries and error mapping."""

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        limiter: RateLimiter,
        rate_limit_max_retries: int,
        rate_limit_backoff_seconds: float,
        rate_limit_backoff_cap_seconds: float,
        secrets: tuple[str, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._rate_limit_max_retries = rate_limit_max_retries
        self._backoff = rate_limit_backoff_seconds
        self._backoff_cap = rate_limit_backoff_cap_seconds
        self._secrets = tuple(s for s in secrets if s)
        self._sleep = sleep
        self._random = random.Random()
        self.rate_limited_retries = 0  # observable for metrics and tests

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(
        self, exc: stripe.StripeError, operation: str, object_id: str | None
    ) -> StripeConnectError:
        kind = classify_stripe_exception(exc)
        return StripeConnectError(
            kind,
            self._redact(exc.user_message or type(exc).__name__),
            operation=operation,
            object_id=object_id,
            http_status=exc.http_status,
            code=exc.code,
            param=getattr(exc, "param", None),
            request_id=exc.request_id,
            replayed=_header(exc.headers, "idempotent-replayed") == "true",
        )

    def _call(
        self, operation: str, object_id: str | None, fn: Callable[[], Any]
    ) -> tuple[dict[str, Any], bool]:
        """Run one SDK call under the rate limit, retrying 429s with exponential backoff.

        Returns the answer as plain data and whether Stripe replayed it from its idempotency
        store (`Idempotent-Replayed: true`).
        """
        failures = 0
        while True:
            self._limiter.acquire()
            try:
                obj = fn()
                response = obj.last_response
                replayed = response is not None and (
                    _header(response.headers, "idempotent-replayed") == "true"
                )
                return obj.to_dict(), replayed
            except stripe.StripeError as exc:
                error = self._error(exc, operation, object_id)
            if error.kind is not StripeErrorKind.RATE_LIMITED:
                raise error
            failures += 1
            if failures > self._rate_limit_max_retries:
                raise error
            self.rate_limited_retries += 1
            delay = backoff_delay(
                failures,
                base=self._backoff,
                cap=self._backoff_cap,
                jitter=0.5,
                rand=self._random.random(),
            )
            log.info(
                "stripe %s %s rate limited (429), retry %d in %.2fs",
                operation,
                object_id or "",
                failures,
                delay,
            )
            self._sleep(delay)

    # --- accounts and balance ----------------------------------------------------------------

    def check_account(self, account_id: str) -> ConnectAccountStatus:
        """Payouts enabled, transfers capability and outstanding requirements of an account."""
        account, _ = self._call(
            "account check", account_id, lambda: self._client.v1.accounts.retrieve(account_id)
        )
        capabilities = account.get("capabilities") or {}
        requirements = account.get("requirements") or {}
        return ConnectAccountStatus(
            account_id=account_id,
            payouts_enabled=bool(account.get("payouts_enabled")),
            transfers_capability=capabilities.get("transfers"),
            details_submitted=bool(account.get("details_submitted")),
            currently_due=tuple(requirements.get("currently_due") or ()),
            past_due=tuple(requirements.get("past_due") or ()),
            disabled_reason=requirements.get("disabled_reason"),
        )

    def available_balance(self) -> dict[str, int]:
        """The platform's available balance per lower-case currency, in minor units."""
        balance, _ = self._call("balance", None, lambda: self._client.v1.balance.retrieve())
        result: dict[str, int] = {}
        for entry in balance.get("available") or []:
            currency = str(entry.get("currency") or "").lower()
            result[currency] = result.get(currency, 0) + _int_field(
                entry, "amount", "balance", currency
            )
        return result

    # --- transfers ---------------------------------------------------------------------------

    def create_transfer(
        self,
        *,
        amount: int,
        currency: str,
        destination: str,
        idempotency_key: str,
        transfer_group: str | None = None,
        metadata: Mapping[str, str] | None = None,
        description: str | None = None,
    ) -> Transfer:
        """Create a transfer with the caller's idempotency key.

        The same key with the same parameters returns the original transfer (`replayed`); the
        same key with other parameters raises kind IDEMPOTENCY.
        """
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"transfer to {destination}: amount is {amount!r}, expected int > 0")
        if not idempotency_key:
            raise ValueError(f"transfer to {destination}: an idempotency key is required")
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "destination": destination,
        }
        if transfer_group:
            params["transfer_group"] = transfer_group
        if metadata:
            params["metadata"] = {str(k): str(v) for k, v in metadata.items()}
        if description:
            params["description"] = description
        created, replayed = self._call(
            "transfer create",
            destination,
            lambda: self._client.v1.transfers.create(
                params, options={"idempotency_key": idempotency_key}
            ),
        )
        return _to_transfer(created, "transfer create", replayed=replayed)

    def iter_transfers(
        self, *, transfer_group: str | None = None, destination: str | None = None
    ) -> Iterator[Transfer]:
        """Every transfer matching the filters, newest first, following pagination."""
        params: dict[str, Any] = {"limit": 100}
        if transfer_group:
            params["transfer_group"] = transfer_group
        if destination:
            params["destination"] = destination
        target = transfer_group or destination
        while True:
            page, _ = self._call(
                "transfer list", target, lambda p=dict(params): self._client.v1.transfers.list(p)
            )
            items = list(page.get("data") or [])
            for item in items:
                yield _to_transfer(item, "transfer list")
            if not page.get("has_more") or not items:
                return
            params["starting_after"] = items[-1]["id"]

    def find_transfers(
        self, *, transfer_group: str | None = None, destination: str | None = None
    ) -> list[Transfer]:
        if not transfer_group and not destination:
            raise ValueError("find_transfers needs a transfer_group or a destination")
        return list(self.iter_transfers(transfer_group=transfer_group, destination=destination))

    def retrieve_transfer(self, transfer_id: str) -> Transfer:
        obj, _ = self._call(
            "transfer retrieve",
            transfer_id,
            lambda: self._client.v1.transfers.retrieve(transfer_id),
        )
        return _to_transfer(obj, "transfer retrieve")

    def reverse_transfer(
        self,
        transfer_id: str,
        *,
        amount: int | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> TransferReversal:
        """Reverse a transfer fully (amount None) or partly."""
        params: dict[str, Any] = {}
        if amount is not None:
            if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
                raise ValueError(f"reversal of {transfer_id}: amount is {amount!r}")
            params["amount"] = amount
        if metadata:
            params["metadata"] = {str(k): str(v) for k, v in metadata.items()}
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        obj, _ = self._call(
            "transfer reversal",
            transfer_id,
            lambda: self._client.v1.transfers.reversals.create(
                transfer_id, params, options=options
            ),
        )
        return TransferReversal(
            id=str(obj.get("id")),
            transfer_id=transfer_id,
            amount=_int_field(obj, "amount", "transfer reversal", transfer_id),
            currency=str(obj.get("currency") or ""),
        )


class StripeConnectResource(ConfigurableResource):
    """Stripe Connect for creator payouts. Point `api_base` at the sandbox in development."""

    api_key: str = Field(repr=False, description="Secret key (sk_live_/sk_test_); use EnvVar.")
    api_base: str = Field(
        default="https://api.stripe.com",
        description="Stripe API base URL; the sandbox's http://127.0.0.1:PORT/stripe in dev.",
    )
    max_network_retries: int = Field(
        default=2, ge=0, description="SDK retries (same key) on connection errors, 409 and 5xx."
    )
    timeout_seconds: float = Field(default=30.0, gt=0)
    rate_limit_max_retries: int = Field(
        default=6, ge=0, description="Our retries of 429 answers (the SDK does not retry them)."
    )
    rate_limit_backoff_seconds: float = Field(default=0.5, ge=0)
    rate_limit_backoff_cap_seconds: float = Field(default=8.0, ge=0)
    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        description="In-process request-rate limit when the caller passes no shared limiter.",
    )

    def get_client(self, limiter: RateLimiter | None = None) -> StripeConnectClient:
        """A client for one step/worker. Pass a shared limiter to pace several workers."""
        if limiter is None:
            limiter = (
                InProcessRateLimiter(self.requests_per_second)
                if self.requests_per_second
                else NoRateLimit()
            )
        sdk = stripe.StripeClient(
            self.api_key,
            base_addresses={"api": self.api_base.rstrip("/")},
            http_client=stripe.HTTPXClient(timeout=self.timeout_seconds, allow_sync_methods=True),
            max_network_retries=self.max_network_retries,
        )
        return StripeConnectClient(
            sdk,
            limiter=limiter,
            rate_limit_max_retries=self.rate_limit_max_retries,
            rate_limit_backoff_seconds=self.rate_limit_backoff_seconds,
            rate_limit_backoff_cap_seconds=self.rate_limit_backoff_cap_seconds,
            secrets=(self.api_key,),
        )
