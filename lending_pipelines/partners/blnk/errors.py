"""Blnk error taxonomy: retryable / final classes, both error body shapes parsed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
