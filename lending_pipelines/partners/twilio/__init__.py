"""Twilio WhatsApp: the HTTP client, its payloads and error taxonomy."""

from .client import WhatsAppClient
from .errors import OUTSIDE_WINDOW_CODE, WhatsAppError, WhatsAppErrorKind
from .models import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    StatusUpdate,
    WhatsAppMessage,
    parse_status_callback,
    whatsapp_address,
)

__all__ = [
    "FAILED_STATUSES",
    "FINAL_STATUSES",
    "OUTSIDE_WINDOW_CODE",
    "StatusUpdate",
    "WhatsAppClient",
    "WhatsAppError",
    "WhatsAppErrorKind",
    "WhatsAppMessage",
    "parse_status_callback",
    "whatsapp_address",
]
