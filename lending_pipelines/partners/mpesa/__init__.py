"""Safaricom M-Pesa Daraja: the client of one app + shortcode (OAuth, B2C, transaction status),
its payload models (pydantic: token, acknowledgement, result callback), the token cache and
error taxonomy."""

from .client import (
    B2C_PATH,
    COMMAND_IDS,
    DUPLICATE_ORIGINATOR,
    OAUTH_PATH,
    PRODUCTION_BASE_URL,
    SANDBOX_BASE_URL,
    STATUS_PATH,
    MpesaClient,
    MpesaClients,
    MpesaConfig,
)
from .errors import (
    MpesaAuthError,
    MpesaDuplicateRequestError,
    MpesaError,
    MpesaFinalError,
    MpesaOutcomeUnknownError,
    MpesaPayloadError,
    MpesaRetryableError,
)
from .models import (
    Acknowledgement,
    MpesaResult,
    ResultCallback,
    StatusParameters,
    TokenPayload,
    parse_result_callback,
)
from .tokens import TOKEN_CACHE, TokenCache

__all__ = [
    "B2C_PATH",
    "COMMAND_IDS",
    "DUPLICATE_ORIGINATOR",
    "OAUTH_PATH",
    "PRODUCTION_BASE_URL",
    "SANDBOX_BASE_URL",
    "STATUS_PATH",
    "TOKEN_CACHE",
    "Acknowledgement",
    "MpesaAuthError",
    "MpesaClient",
    "MpesaClients",
    "MpesaConfig",
    "MpesaDuplicateRequestError",
    "MpesaError",
    "MpesaFinalError",
    "MpesaOutcomeUnknownError",
    "MpesaPayloadError",
    "MpesaResult",
    "MpesaRetryableError",
    "ResultCallback",
    "StatusParameters",
    "TokenCache",
    "TokenPayload",
    "parse_result_callback",
]
