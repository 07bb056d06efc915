"""Stripe Connect: the client over the official SDK, its typed results and error taxonomy."""

from .client import InProcessRateLimiter, NoRateLimit, RateLimiter, StripeConnectClient
from .errors import StripeConnectError, StripeErrorKind
from .models import ConnectAccountStatus, Transfer, TransferReversal

__all__ = [
    "ConnectAccountStatus",
    "InProcessRateLimiter",
    "NoRateLimit",
    "RateLimiter",
    "StripeConnectClient",
    "StripeConnectError",
    "StripeErrorKind",
    "Transfer",
    "TransferReversal",
]
