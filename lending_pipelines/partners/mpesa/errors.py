"""Daraja's error taxonomy: retryable (spike arrest, quota, transport before sending), final
(auth, duplicate OriginatorConversationID, bad payload), and outcome unknown (a B2C that may
have reached Safaricom)."""

from __future__ import annotations


class MpesaError(Exception):
    """A failed Daraja call. `retryable`: the same call may succeed later without risk."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        shortcode: str,
        status_code: int | None = None,
        error_code: str | None = None,
        originator_conversation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.shortcode = shortcode
        self.status_code = status_code
        self.error_code = error_code
        self.originator_conversation_id = originator_conversation_id


class MpesaRetryableError(MpesaError):
    """Nothing was processed: spike arrest, quota, 429, connection refused, 5xx on a query."""

    retryable = True


class MpesaFinalError(MpesaError):
    """Rejected (validation, permissions, bad credentials): retrying the same call cannot help."""


class MpesaAuthError(MpesaFinalError):
    """OAuth refused the consumer key/secret."""


class MpesaDuplicateRequestError(MpesaFinalError):
    """`500.002.1001`: this OriginatorConversationID was already submitted — it is *sent*."""


class MpesaOutcomeUnknownError(MpesaError):
    """The B2C request may have been accepted (read timeout, 5xx after sending). Reconcile with a
    status query; never resend with a new OriginatorConversationID."""


class MpesaPayloadError(MpesaFinalError):
    """A body without the documented shape; names the field and value (never a secret)."""
