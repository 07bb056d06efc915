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
from typing import Any, Protocol

import stripe

from ...domain.backoff import backoff_delay
from .errors import StripeConnectError, StripeErrorKind, classify_stripe_exception, header_value
from .models import ConnectAccountStatus, Transfer, TransferReversal, int_field, to_transfer

log = logging.getLogger(__name__)


# --- rate limiting -----------------------------------------------------------------------------


class RateLimiter(Protocol):
    def acquire(self) -> None:
        """Block until one more request may be sent."""


class InProcessRateLimiter:
    """Requests spaced at 1/rate seconds (generic cell rate algorithm), thread-safe.

    Shared by the threads of one process; workers in several processes need a shared limiter
    such as `lending_pipelines.db.rate_limit.PostgresRateLimiter`.
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
            replayed=header_value(exc.headers, "idempotent-replayed") == "true",
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
                    header_value(response.headers, "idempotent-replayed") == "true"
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
            result[currency] = result.get(currency, 0) + int_field(
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
        return to_transfer(created, "transfer create", replayed=replayed)

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
                yield to_transfer(item, "transfer list")
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
        return to_transfer(obj, "transfer retrieve")

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
            amount=int_field(obj, "amount", "transfer reversal", transfer_id),
            currency=str(obj.get("currency") or ""),
        )
