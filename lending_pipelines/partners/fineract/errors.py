"""Fineract's error taxonomy: retryable (409 locked, 425, 429, 5xx, transport) or final
(400, 401, 403, 404, a payload without the documented shape), and the classification of a
non-2xx response from its ApiGlobalErrorResponse body."""

from __future__ import annotations

import json

import httpx

# 409 = loan locked by the close-of-business job / optimistic lock, 425 = the same idempotency
# key is still being processed, 429 = a proxy in front of the server is throttling.
RETRYABLE_STATUSES = frozenset({409, 425, 429})


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
        self.expected = expected


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
