"""Twilio Programmable Messaging sandbox, WhatsApp channel (API 2010-04-01).

Behaviours emulated (API_CONTRACTS.md §5.6):

* `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form) with HTTP Basic
  `AccountSid:AuthToken`; the path's AccountSid must be the username (401 code 20003);
* validation: `To`/`From` are `whatsapp:+E164` (21211 / 21606), exactly one of `Body` or
  `ContentSid` (`HX` + 32 hex), `ContentVariables` a JSON object string and only with
  `ContentSid`; success is **201** with `status: queued` (no callback for `queued`);
* afterwards, in the background, the status moves `sent → delivered → read`, each step
  form-POSTed to the message's `StatusCallback` (signed with `X-Twilio-Signature`); a
  free-form `Body` to a recipient whose last inbound message is older than the 24-hour session
  window goes `failed` with ErrorCode 63016 instead (the create itself still answers 201);
* `GET .../Messages/{MessageSid}.json` reflects the current status; `GET .../Messages.json`
  lists messages (filter `To`), newest first;
* 429 in Twilio's legacy error shape (code 20429) through the fault injector.

Options (constructor keywords; `last_inbound`, `undeliverable`, `callback_delay_ms` and
`response_delay_ms` also through `configure`):
    account_sid: "AC" + 32 hex (default DEV_ACCOUNT_SID); auth_token (default DEV_AUTH_TOKEN)
    senders: WhatsApp senders of the account (default ["whatsapp:+14155238886"])
    last_inbound: {"whatsapp:+2547...": "2026-01-31T10:00:00+00:00" | "now"} per recipient
    undeliverable: recipients whose messages end `undelivered` with ErrorCode 63024
    callback_delay_ms: pause before each status step (default 50)
    response_delay_ms: the message is created at once but the 201 comes this late (default 0),
        so a client with a shorter read timeout sees an ambiguous failure
    window_hours: session window (default 24)
    seed: random seed for message sids (default 5)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..demo import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN
from .core import ProviderSandbox, SandboxConfigError

DEV_SENDER = "whatsapp:+14155238886"
E164_WHATSAPP = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")
CONTENT_SID = re.compile(r"^HX[0-9a-f]{32}$")
API_VERSION = "2010-04-01"


def twilio_error(code: int, message: str, status: int) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(token, url + concatenated sorted key+value))."""
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _parse_instant(recipient: str, raw: object) -> datetime:
    if raw == "now":
        return datetime.now(UTC)
    if not isinstance(raw, str):
        raise SandboxConfigError(f"twilio last_inbound[{recipient!r}] is {raw!r}")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise SandboxConfigError(
            f"twilio last_inbound[{recipient!r}] is {raw!r}, expected ISO 8601 or 'now'"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _recipient(raw: str) -> str:
    value = raw if raw.startswith("whatsapp:") else f"whatsapp:{raw}"
    if not E164_WHATSAPP.match(value):
        raise SandboxConfigError(f"twilio recipient {raw!r} is not whatsapp:+E164")
    return value


class TwilioSandbox(ProviderSandbox):
    name = "twilio"

    OPTION_NAMES = {
        "account_sid",
        "auth_token",
        "senders",
        "last_inbound",
        "undeliverable",
        "callback_delay_ms",
        "response_delay_ms",
        "window_hours",
        "seed",
    }

    def __init__(self, **options: object) -> None:
        unknown = set(options) - self.OPTION_NAMES
        if unknown:
            raise SandboxConfigError(
                f"twilio sandbox: unknown option(s) {sorted(unknown)}; known: "
                f"{sorted(self.OPTION_NAMES)}"
            )
        super().__init__(**options)
        self._tasks: set[asyncio.Task] = set()
        self.reset()

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = set()
        options = self.options
        self.account_sid = str(options.get("account_sid", DEV_ACCOUNT_SID))
        self.auth_token = str(options.get("auth_token", DEV_AUTH_TOKEN))
        self.senders = {_recipient(s) for s in options.get("senders", [DEV_SENDER])}  # type: ignore[union-attr]
        self.window = timedelta(hours=float(options.get("window_hours", 24)))  # type: ignore[arg-type]
        self.callback_delay = float(options.get("callback_delay_ms", 50)) / 1000  # type: ignore[arg-type]
        self.response_delay = float(options.get("response_delay_ms", 0)) / 1000  # type: ignore[arg-type]
        self._rng = random.Random(int(options.get("seed", 5)))  # type: ignore[arg-type]
        self.last_inbound: dict[str, datetime] = {}
        self.undeliverable: set[str] = set()
        self._apply(
            {
                "last_inbound": options.get("last_inbound", {}),
                "undeliverable": options.get("undeliverable", []),
            }
        )
        self.messages: dict[str, dict] = {}
        self.callbacks: list[dict] = []

    def _apply(self, body: dict) -> None:
        inbound = body.get("last_inbound", {})
        if not isinstance(inbound, dict):
            raise SandboxConfigError(f"twilio last_inbound must be an object, got {inbound!r}")
        parsed = {_recipient(k): _parse_instant(k, v) for k, v in inbound.items()}
        undeliverable = body.get("undeliverable", [])
        if not isinstance(undeliverable, list):
            raise SandboxConfigError(f"twilio undeliverable must be a list, got {undeliverable!r}")
        self.last_inbound.update(parsed)
        self.undeliverable.update(_recipient(n) for n in undeliverable)
        if "callback_delay_ms" in body:
            self.callback_delay = float(body["callback_delay_ms"]) / 1000
        if "response_delay_ms" in body:
            self.response_delay = float(body["response_delay_ms"]) / 1000

    def configure(self, body: dict) -> None:
        """`{"last_inbound": {"whatsapp:+254712345678": "now"}, "undeliverable": [...],
        "callback_delay_ms": 10}` — a recipient's last inbound message opens its 24 h window."""
        unknown = set(body) - {
            "last_inbound",
            "undeliverable",
            "callback_delay_ms",
            "response_delay_ms",
        }
        if unknown:
            raise SandboxConfigError(f"twilio configure: unknown field(s) {sorted(unknown)}")
        self._apply(body)

    def snapshot(self) -> dict:
        messages = list(self.messages.values())
        per_recipient: dict[str, int] = {}
        for message in messages:
            per_recipient[message["to"]] = per_recipient.get(message["to"], 0) + 1
        return {
            "account_sid": self.account_sid,
            "messages": messages,
            "message_count": len(messages),
            "messages_per_recipient": per_recipient,
            "callbacks": list(self.callbacks),
            "last_inbound": {k: v.isoformat() for k, v in self.last_inbound.items()},
        }

    async def shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def error_response(self) -> Response:
        return twilio_error(20500, "Internal Server Error", 500)

    def rate_limited_response(self) -> Response:
        return twilio_error(20429, "Too Many Requests", 429)

    # --- request handling ------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            username, password = "", ""
        path_sid = request.path_params["account_sid"]
        if (
            scheme.lower() != "basic"
            or username != self.account_sid
            or path_sid != username
            or not hmac.compare_digest(password, self.auth_token)
        ):
            return twilio_error(20003, "Authenticate", 401)
        return None

    def _sid(self) -> str:
        return "SM" + "".join(self._rng.choice("0123456789abcdef") for _ in range(32))

    def _uri(self, sid: str) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"

    async def _create(self, request: Request) -> Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        to, sender = form.get("To", ""), form.get("From", "")
        if not to:
            return twilio_error(21604, "A 'To' phone number is required.", 400)
        if not E164_WHATSAPP.match(to):
            return twilio_error(21211, f"The 'To' number {to} is not a valid phone number.", 400)
        if not sender:
            return twilio_error(21603, "A 'From' phone number is required.", 400)
        if not E164_WHATSAPP.match(sender) or sender not in self.senders:
            return twilio_error(
                21606,
                f"The From phone number {sender} is not a valid, WhatsApp-capable inbound phone "
                "number or short code for your account.",
                400,
            )
        body, content_sid = form.get("Body"), form.get("ContentSid")
        if body and content_sid:
            return twilio_error(
                21619, "Send either Body or ContentSid, not both, on the WhatsApp channel.", 400
            )
        if not body and not content_sid:
            return twilio_error(21619, "A text message body or media urls must be specified.", 400)
        if body is not None and len(body) > 1600:
            return twilio_error(21617, "The concatenated message body exceeds 1600 chars.", 400)
        if content_sid is not None and not CONTENT_SID.match(content_sid):
            return twilio_error(21655, f"The ContentSid {content_sid} is invalid.", 400)
        variables = form.get("ContentVariables")
        if variables is not None:
            if not content_sid:
                return twilio_error(21656, "ContentVariables requires a ContentSid.", 400)
            try:
                parsed = json.loads(variables)
            except json.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                return twilio_error(21656, "The ContentVariables Parameter is invalid.", 400)
        now = datetime.now(UTC)
        sid = self._sid()
        message = {
            "sid": sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body if body is not None else "",
            "content_sid": content_sid,
            "content_variables": variables,
            "date_created": format_datetime(now),
            "date_sent": None,
            "date_updated": format_datetime(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "to": to,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "status": "queued",
            "status_callback": form.get("StatusCallback"),
            "subresource_uris": {"media": self._uri(sid).replace(".json", "/Media.json")},
            "uri": self._uri(sid),
        }
        self.messages[sid] = message
        outcome = self._planned_outcome(to, free_form=body is not None, now=now)
        task = asyncio.create_task(self._progress(sid, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        return JSONResponse(
            {k: v for k, v in message.items() if k not in {"content_variables", "status_callback"}},
            status_code=201,
        )

    def _planned_outcome(
        self, to: str, *, free_form: bool, now: datetime
    ) -> list[tuple[str, int | None, str | None]]:
        if free_form:
            last = self.last_inbound.get(to)
            if last is None or now - last > self.window:
                return [
                    (
                        "failed",
                        63016,
                        "Failed to send freeform message because you are outside the allowed "
                        "window. If you are using WhatsApp, please use a Message Template.",
                    )
                ]
        if to in self.undeliverable:
            return [("sent", None, None), ("undelivered", 63024, "Invalid message recipient")]
        return [("sent", None, None), ("delivered", None, None), ("read", None, None)]

    async def _progress(self, sid: str, steps: list[tuple[str, int | None, str | None]]) -> None:
        for status, error_code, error_message in steps:
            await asyncio.sleep(self.callback_delay)
            message = self.messages.get(sid)
            if message is None:
                return
            now = format_datetime(datetime.now(UTC))
            message.update(
                status=status,
                error_code=error_code,
                error_message=error_message,
                date_updated=now,
            )
            if status == "sent":
                message["date_sent"] = now
                message["price"] = "-0.00500"
            if message.get("status_callback"):
                await self._callback(message, status, error_code)

    async def _callback(self, message: dict, status: str, error_code: int | None) -> None:
        url = message["status_callback"]
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "ChannelPrefix": "whatsapp",
            "From": message["from"],
            "MessageSid": message["sid"],
            "MessageStatus": status,
            "SmsSid": message["sid"],
            "SmsStatus": status,
            "To": message["to"],
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        record: dict = {"url": url, "message_sid": message["sid"], "status": status}
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.post(
                    url,
                    data=params,
                    headers={"X-Twilio-Signature": twilio_signature(self.auth_token, url, params)},
                )
            record["response_status"] = response.status_code
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        self.callbacks.append(record)

    async def _fetch(self, request: Request) -> Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        message = self.messages.get(request.path_params["message_sid"])
        if message is None:
            return twilio_error(20404, "The requested resource was not found", 404)
        return JSONResponse(
            {k: v for k, v in message.items() if k not in {"content_variables", "status_callback"}}
        )

    async def _list(self, request: Request) -> Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        rows = list(reversed(self.messages.values()))
        to = request.query_params.get("To")
        if to:
            rows = [m for m in rows if m["to"] == to]
        page_size = int(request.query_params.get("PageSize", "50"))
        shown = [
            {k: v for k, v in m.items() if k not in {"content_variables", "status_callback"}}
            for m in rows[:page_size]
        ]
        return JSONResponse(
            {
                "messages": shown,
                "page": 0,
                "page_size": page_size,
                "first_page_uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json",
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json",
                "start": 0,
                "end": max(0, len(shown) - 1),
            }
        )

    def routes(self) -> list[BaseRoute]:
        base = f"/{API_VERSION}/Accounts/{{account_sid}}"
        return [
            Route(f"{base}/Messages.json", self._create, methods=["POST"]),
            Route(f"{base}/Messages.json", self._list, methods=["GET"]),
            Route(f"{base}/Messages/{{message_sid}}.json", self._fetch, methods=["GET"]),
        ]
