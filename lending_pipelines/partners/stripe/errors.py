"""Stripe Connect error taxonomy: one typed `StripeErrorKind` per failure, so callers decide
retry / final / unknown from one field instead of exception classes."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import stripe

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


def header_value(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


class StripeEventShapeError(ValueError):
    """A stored Stripe event lacks a field we need, or holds one of the wrong type."""
