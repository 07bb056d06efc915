"""Twilio's WhatsApp payloads: the message resource, status callbacks, E.164 addresses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import WhatsAppError, WhatsAppErrorKind

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Message statuses after which nothing more will happen to a message.
FINAL_STATUSES = frozenset({"delivered", "read", "failed", "undelivered", "canceled"})
FAILED_STATUSES = frozenset({"failed", "undelivered"})


def whatsapp_address(number: str) -> str:
    """`+254712345678` or `whatsapp:+254712345678` → `whatsapp:+254712345678` (E.164 checked)."""
    raw = number.strip()
    bare = raw.removeprefix("whatsapp:")
    if not E164.match(bare):
        raise WhatsAppError(
            WhatsAppErrorKind.INVALID_RECIPIENT,
            f"number {number!r} is not E.164 (+ country code and digits)",
            code=21211,
        )
    return f"whatsapp:{bare}"


@dataclass(frozen=True)
class WhatsAppMessage:
    sid: str
    status: str
    to: str
    from_: str
    error_code: int | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """One status callback: Twilio form-POSTs these to the message's StatusCallback URL."""

    message_sid: str
    status: str
    to: str | None
    error_code: int | None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def parse_status_callback(form: Mapping[str, str]) -> StatusUpdate:
    """Parse a status-callback form body. Raises ValueError naming the bad field."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid or not re.match(r"^(SM|MM)[0-9a-f]{32}$", sid):
        raise ValueError(f"twilio status callback: field 'MessageSid' is {sid!r}")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not status:
        raise ValueError(f"twilio status callback {sid}: field 'MessageStatus' is missing")
    raw_code = form.get("ErrorCode")
    error_code: int | None = None
    if raw_code not in (None, ""):
        if not str(raw_code).isdigit():
            raise ValueError(f"twilio status callback {sid}: field 'ErrorCode' is {raw_code!r}")
        error_code = int(raw_code)
    return StatusUpdate(sid, status, form.get("To"), error_code)


def parse_message(data: Any, to: str) -> WhatsAppMessage:
    if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
        raise WhatsAppError(
            WhatsAppErrorKind.AMBIGUOUS,
            f"answer has no message sid (field 'sid' is "
            f"{data.get('sid') if isinstance(data, dict) else data!r})",
            to=to,
        )
    code = data.get("error_code")
    return WhatsAppMessage(
        sid=data["sid"],
        status=str(data.get("status") or ""),
        to=str(data.get("to") or to),
        from_=str(data.get("from") or ""),
        error_code=int(code) if code is not None else None,
        error_message=data.get("error_message"),
    )
