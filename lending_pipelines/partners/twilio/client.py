"""A plain httpx client for Twilio Programmable Messaging (WhatsApp) bound to one account.

Retries only what Twilio never processed (429 / 20429, a connection refused before sending);
anything ambiguous is raised as `ambiguous` and never resent here. Sending at most once per
idempotency key is the outbox's job (lending_pipelines.workflows.messaging). The auth token never
appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ...domain.backoff import backoff_delay
from .errors import OUTSIDE_WINDOW_CODE, RECIPIENT_CODES, WhatsAppError, WhatsAppErrorKind
from .models import WhatsAppMessage, parse_message, whatsapp_address

log = logging.getLogger(__name__)


class WhatsAppClient:
    """An httpx client bound to one Twilio account. Use as a context manager."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        account_sid: str,
        from_number: str,
        status_callback_url: str | None,
        rate_limit_max_retries: int,
        backoff_seconds: float,
        backoff_cap_seconds: float,
        secrets: tuple[str, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._account_sid = account_sid
        self._from = whatsapp_address(from_number)
        self._status_callback_url = status_callback_url
        self._max_retries = rate_limit_max_retries
        self._backoff = backoff_seconds
        self._backoff_cap = backoff_cap_seconds
        self._secrets = tuple(s for s in secrets if s)
        self._sleep = sleep
        self._random = random.Random()

    def __enter__(self) -> WhatsAppClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self._account_sid}/Messages.json"

    def _error_from_response(self, response: httpx.Response, to: str | None) -> WhatsAppError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = body.get("code") if isinstance(body, dict) else None
        code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
        message = self._redact(str(body.get("message") if isinstance(body, dict) else "") or "")
        message = message or response.reason_phrase
        status = response.status_code
        if status == 429 or code == 20429:
            kind = WhatsAppErrorKind.RATE_LIMITED
        elif status == 401 or code == 20003:
            kind = WhatsAppErrorKind.AUTHENTICATION
        elif code == OUTSIDE_WINDOW_CODE:
            kind = WhatsAppErrorKind.OUTSIDE_WINDOW
        elif code in RECIPIENT_CODES:
            kind = WhatsAppErrorKind.INVALID_RECIPIENT
        elif status >= 500:
            kind = WhatsAppErrorKind.AMBIGUOUS
        else:
            kind = WhatsAppErrorKind.INVALID_REQUEST
        return WhatsAppError(kind, message, to=to, code=code, http_status=status)

    def _request(self, method: str, path: str, to: str | None, **kwargs: Any) -> Any:
        failures = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error = WhatsAppError(
                    WhatsAppErrorKind.NOT_SENT, f"{type(exc).__name__} before sending", to=to
                )
            except httpx.TransportError as exc:
                # The request may have reached Twilio (read timeout, dropped connection).
                raise WhatsAppError(
                    WhatsAppErrorKind.AMBIGUOUS,
                    f"{type(exc).__name__} after the request was sent; outcome unknown",
                    to=to,
                ) from None
            else:
                if response.is_success:
                    try:
                        return response.json()
                    except ValueError:
                        raise WhatsAppError(
                            WhatsAppErrorKind.AMBIGUOUS,
                            f"http {response.status_code} with a body that is not JSON",
                            to=to,
                            http_status=response.status_code,
                        ) from None
                error = self._error_from_response(response, to)
            if not error.retryable:
                raise error
            failures += 1
            if failures > self._max_retries:
                raise error
            delay = backoff_delay(
                failures,
                base=self._backoff,
                cap=self._backoff_cap,
                jitter=0.5,
                rand=self._random.random(),
            )
            log.info(
                "twilio %s to %s: %s, retry %d in %.2fs", method, to, error.kind, failures, delay
            )
            self._sleep(delay)

    def _send(self, to: str, fields: dict[str, str]) -> WhatsAppMessage:
        address = whatsapp_address(to)
        data = {"To": address, "From": self._from, **fields}
        if self._status_callback_url:
            data["StatusCallback"] = self._status_callback_url
        answer = self._request("POST", self._messages_path(), address, data=data)
        return parse_message(answer, address)

    def send_template(
        self, to: str, content_sid: str, variables: Mapping[str, str] | None = None
    ) -> WhatsAppMessage:
        """A pre-approved template: allowed outside the 24-hour session window."""
        if not re.match(r"^HX[0-9a-f]{32}$", content_sid):
            raise WhatsAppError(
                WhatsAppErrorKind.INVALID_REQUEST,
                f"content_sid {content_sid!r} is not 'HX' + 32 hex characters",
                to=to,
            )
        fields = {"ContentSid": content_sid}
        if variables:
            fields["ContentVariables"] = json.dumps(
                {str(k): str(v) for k, v in variables.items()}, ensure_ascii=False
            )
        return self._send(to, fields)

    def send_text(self, to: str, body: str) -> WhatsAppMessage:
        """Free-form text: only delivered inside 24 h of the recipient's last message (63016)."""
        if not body or len(body) > 1600:
            raise WhatsAppError(
                WhatsAppErrorKind.INVALID_REQUEST,
                f"body has {len(body)} characters, expected 1..1600",
                to=to,
            )
        return self._send(to, {"Body": body})

    def fetch_message(self, sid: str) -> WhatsAppMessage:
        path = f"/2010-04-01/Accounts/{self._account_sid}/Messages/{sid}.json"
        return parse_message(self._request("GET", path, None), "")
