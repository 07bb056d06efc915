"""WhatsApp messages through Twilio Programmable Messaging.

Twilio's Messages API has no idempotency key, so a resend after an ambiguous failure can
deliver twice. The rule here (API_CONTRACTS.md §5.5):

* retry automatically only what Twilio never processed: 429 / code 20429 ("never processed and
  always safe to retry") and connection failures before the request was sent;
* anything ambiguous (a read timeout after the request went out, a 5xx, an unreadable 2xx) is
  an `unknown` outcome, never resent automatically;
* workflows send through `send_once`, which goes through the `outbox` table so one idempotency
  key is attempted at most once (lending_pipelines.db.outbox).

The auth token never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field

from ..db import outbox
from ..domain.backoff import backoff_delay

log = logging.getLogger(__name__)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CHANNEL = "whatsapp"
# Message statuses after which nothing more will happen to a message.
FINAL_STATUSES = frozenset({"delivered", "read", "failed", "undelivered", "canceled"})
FAILED_STATUSES = frozenset({"failed", "undelivered"})
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


def _parse_message(data: Any, to: str) -> WhatsAppMessage:
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
        return _parse_message(answer, address)

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
        return _parse_message(self._request("GET", path, None), "")

    def send_once(
        self,
        engine: sa.Engine,
        idempotency_key: str,
        to: str,
        *,
        content_sid: str | None = None,
        variables: Mapping[str, str] | None = None,
        body: str | None = None,
    ) -> outbox.SendOutcome:
        """Send through the outbox: at most one attempt per idempotency key.

        1. one transaction: enqueue the intent (key unique) and claim it (pending → sending);
           an already-claimed key returns its recorded outcome without sending;
        2. call Twilio;
        3. second transaction: record sent / failed / unknown — or back to pending when Twilio
           certainly did not process it (429 exhausted, connection refused), so a later call
           with the same key may try again.
        """
        if (content_sid is None) == (body is None):
            raise ValueError(f"outbox {idempotency_key}: give exactly one of content_sid or body")
        try:
            target, invalid = whatsapp_address(to), None
        except WhatsAppError as exc:  # recorded as a failed intent, not a crash
            target, invalid = to, exc
        payload: dict[str, Any] = (
            {"content_sid": content_sid, "variables": dict(variables or {})}
            if content_sid is not None
            else {"body": body}
        )
        with engine.begin() as conn:
            outbox.enqueue(
                conn,
                idempotency_key=idempotency_key,
                channel=CHANNEL,
                target=target,
                payload=payload,
            )
            claimed = outbox.claim(conn, idempotency_key)
        if claimed is None:
            with engine.connect() as conn:
                return outbox.outcome(conn, idempotency_key, attempted_now=False)
        if invalid is not None:
            with engine.begin() as conn:
                outbox.record_failed(conn, idempotency_key, error=str(invalid))
                return outbox.outcome(conn, idempotency_key, attempted_now=False)
        try:
            if content_sid is not None:
                message = self.send_template(target, content_sid, variables)
            else:
                message = self.send_text(target, body or "")
        except WhatsAppError as exc:
            with engine.begin() as conn:
                if exc.retryable:
                    outbox.release(conn, idempotency_key, error=str(exc))
                elif exc.outcome_unknown:
                    outbox.record_unknown(conn, idempotency_key, error=str(exc))
                else:
                    outbox.record_failed(conn, idempotency_key, error=str(exc))
                return outbox.outcome(conn, idempotency_key, attempted_now=True)
        except BaseException:
            # Anything else after the claim (a bug, an interrupt) is treated as ambiguous.
            with engine.begin() as conn:
                outbox.record_unknown(
                    conn, idempotency_key, error="interrupted after claiming; outcome unknown"
                )
            raise
        with engine.begin() as conn:
            outbox.record_sent(conn, idempotency_key, provider_message_id=message.sid)
            return outbox.outcome(conn, idempotency_key, attempted_now=True)


class WhatsAppResource(ConfigurableResource):
    """Twilio WhatsApp sender. `base_url` is the sandbox's .../twilio in development."""

    account_sid: str = Field(description="Twilio Account SID (AC...).")
    auth_token: str = Field(repr=False, description="Twilio auth token; use EnvVar.")
    from_number: str = Field(description="WhatsApp sender, +E164 or whatsapp:+E164.")
    base_url: str = Field(default="https://api.twilio.com")
    status_callback_url: str | None = Field(
        default=None, description="Where Twilio POSTs status callbacks (the webhook receiver)."
    )
    timeout_seconds: float = Field(default=15.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    rate_limit_max_retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=0.5, ge=0)
    backoff_cap_seconds: float = Field(default=8.0, ge=0)

    def get_client(self) -> WhatsAppClient:
        http = httpx.Client(
            base_url=self.base_url.rstrip("/"),
            auth=httpx.BasicAuth(self.account_sid, self.auth_token),
            timeout=httpx.Timeout(self.timeout_seconds, connect=self.connect_timeout_seconds),
            headers={"Accept": "application/json"},
        )
        return WhatsAppClient(
            http,
            account_sid=self.account_sid,
            from_number=self.from_number,
            status_callback_url=self.status_callback_url,
            rate_limit_max_retries=self.rate_limit_max_retries,
            backoff_seconds=self.backoff_seconds,
            backoff_cap_seconds=self.backoff_cap_seconds,
            secrets=(self.auth_token,),
        )

    def send_once(
        self,
        engine: sa.Engine,
        idempotency_key: str,
        to: str,
        *,
        content_sid: str | None = None,
        variables: Mapping[str, str] | None = None,
        body: str | None = None,
    ) -> outbox.SendOutcome:
        """See `WhatsAppClient.send_once`; opens and closes a client for one message."""
        with self.get_client() as client:
            return client.send_once(
                engine,
                idempotency_key,
                to,
                content_sid=content_sid,
                variables=variables,
                body=body,
            )
