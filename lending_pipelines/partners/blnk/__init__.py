"""Blnk ledger: the HTTP client, its payload models (pydantic) and error taxonomy."""

from .client import BlnkClient
from .errors import (
    BlnkAuthError,
    BlnkConflictError,
    BlnkError,
    BlnkFinalError,
    BlnkInsufficientFundsError,
    BlnkNotFoundError,
    BlnkPayloadError,
    BlnkRetryableError,
    parse_error_body,
)
from .models import BlnkBalance, BlnkLedger, BlnkTransaction, LedgerOutcome, PostedTransaction

__all__ = [
    "BlnkAuthError",
    "BlnkBalance",
    "BlnkClient",
    "BlnkConflictError",
    "BlnkError",
    "BlnkFinalError",
    "BlnkInsufficientFundsError",
    "BlnkLedger",
    "BlnkNotFoundError",
    "BlnkPayloadError",
    "BlnkRetryableError",
    "BlnkTransaction",
    "LedgerOutcome",
    "PostedTransaction",
    "parse_error_body",
]
