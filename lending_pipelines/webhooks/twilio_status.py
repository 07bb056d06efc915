"""POST /twilio/status: Twilio message status callbacks (a urlencoded form), accepted only with
a valid X-Twilio-Signature made with the account's auth token."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from .config import ReceiverConfig, Store
from .limits import Refused, check_declared_length, read_body
from .signatures import twilio_request_valid

log = logging.getLogger(__name__)

MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
MESSAGE_STATUS = re.compile(r"^[a-z_]{1,32}$")
MAX_FIELDS = 64
FORM = "application/x-www-form-urlencoded"


def _signed_urls(request: Request, public_url: str) -> list[str]:
    """The URLs Twilio may have signed: our public URL (behind the TLS proxy), or the URL the
    request reached us on (no proxy, as in dev)."""
    query = request.url.query
    public = f"{public_url}{request.url.path}" + (f"?{query}" if query else "")
    return [public, str(request.url)]


def _form(raw: bytes) -> list[tuple[str, str]]:
    try:
        return (
            parse_qsl(
                raw.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=True,
                max_num_fields=MAX_FIELDS,
            )
            if raw
            else []
        )
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "body is not a urlencoded form") from None


def twilio_route(config: ReceiverConfig, store: Store):
    async def twilio_status(request: Request) -> Response:
        try:
            if not config.twilio_auth_token:
                raise Refused(403, "Twilio callbacks are not configured")
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != FORM:
                raise Refused(415, f"content type {content_type[:60]!r}, expected {FORM}")
            signature = request.headers.get("x-twilio-signature")
            if not signature:
                raise Refused(403, "missing X-Twilio-Signature")
            check_declared_length(request, "twilio", config.max_body_bytes["twilio"])
            pairs = _form(
                await read_body(
                    request, "twilio", config.max_body_bytes["twilio"], config.body_timeout_seconds
                )
            )
            urls = _signed_urls(request, config.public_url)
            if not twilio_request_valid(config.twilio_auth_token, urls, pairs, signature):
                raise Refused(403, "invalid X-Twilio-Signature")
            form = dict(pairs)
            if len(form) != len(pairs):
                raise Refused(400, "a form field is repeated")
            sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
            if not MESSAGE_SID.match(sid):
                raise Refused(400, f"field 'MessageSid' is {sid[:40]!r}, expected SM/MM + 32 hex")
            if not MESSAGE_STATUS.match(status):
                raise Refused(400, f"field 'MessageStatus' is {status[:40]!r}")
        except Refused as refused:
            log.warning("twilio status callback refused: %s", refused.message)
            return refused.response()
        await store("twilio", f"{sid}:{status}", form, f"twilio.message.{status}")
        return Response(status_code=204)

    return twilio_status
