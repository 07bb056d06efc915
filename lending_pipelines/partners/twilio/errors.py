"""Twilio's error taxonomy for WhatsApp sends: what is safe to resend and what is not.

Twilio's Messages API has no idempotency key, so a resend after an ambiguous failure can
deliver twice (API_CONTRACTS.md §5.5): only what Twilio never processed (429 / 20429, a
connection refused before sending) is retryable; a read timeout, a 5xx or an unreadable 2xx is
`ambiguous` and never resent automatically.
"""

from __future__ import annotations

from enum import StrEnum

# Error codes that mean the recipient/sender/content is wrong: resending will not help.
RECIPIENT_CODES = frozenset({21211, 21614, 63024, 63003})
OUTSIDE_WINDOW_CODE = 63016


class WhatsAppErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"  # 429/20429: never processed, safe to retry
    NOT_SENT = "not_sent"  # connection failed before the request went out: safe to retry
    AMBIGUOUS = "ambiguous"  # the request went out, the answer is unknown: do not resend
    OUTSIDE_WINDOW = "outside_window"  # 63016: free-form text outside the 24 h session
    INVALID_RECIPIENT = "invalid_recipient"
    AUTHENTICATION = "authentication"
    INVALID_REQUEST = "invalid_request"


class WhatsAppError(Exception):
    def __init__(
        self,
        kind: WhatsAppErrorKind,
        message: str,
        *,
        to: str | None = None,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        self.kind = kind
        self.to = to
        self.code = code
        self.http_status = http_status
        super().__init__(
            f"twilio whatsapp{f' to {to}' if to else ''}: {kind.value}"
            f"{f' (code {code})' if code else ''}"
            f"{f' http {http_status}' if http_status else ''}: {message}"
        )

    @property
    def retryable(self) -> bool:
        """Safe to send again with no risk of a duplicate message."""
        return self.kind in {WhatsAppErrorKind.RATE_LIMITED, WhatsAppErrorKind.NOT_SENT}

    @property
    def outcome_unknown(self) -> bool:
        return self.kind is WhatsAppErrorKind.AMBIGUOUS
