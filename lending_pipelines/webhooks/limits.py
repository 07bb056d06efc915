"""Size and time limits on what a caller may send: a callback is a few KB.

The body is read in chunks against its provider's cap (a declared Content-Length over the cap is
refused before a byte of body is read) and within a deadline, so a slow or huge request costs the
receiver at most one cap of memory and one deadline of time. Every refusal closes the connection
(`Connection: close`), so a client cannot keep streaming into a connection after its answer.
"""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

# Largest body accepted per provider by default (LENDING_WEBHOOKS_MAX_BODY_BYTES_*). Daraja
# results and Twilio status forms are 1-3 KB; Stripe events embed whole objects (a transfer with
# metadata, an account) and stay well under 64 KB.
DEFAULT_MAX_BODY_BYTES = {
    "mpesa": 64 * 1024,
    "stripe": 256 * 1024,
    "twilio": 16 * 1024,
}


class Refused(Exception):
    """A request the receiver answers with an error status without storing anything."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> JSONResponse:
        return refusal(self.status, self.message)


def refusal(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})


def declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise Refused(400, f"Content-Length is {raw[:20]!r}, expected a number of bytes")
    return int(raw)


def check_declared_length(request: Request, provider: str, cap: int) -> None:
    """Refuse at once a body declared larger than the provider's cap (nothing read yet)."""
    length = declared_length(request)
    if length is not None and length > cap:
        raise Refused(413, f"body of {length} bytes is over the {cap}-byte limit for {provider}")


async def read_body(request: Request, provider: str, cap: int, timeout_seconds: float) -> bytes:
    """The whole body, at most `cap` bytes, arriving within `timeout_seconds`."""
    check_declared_length(request, provider, cap)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise Refused(413, f"body is over the {cap}-byte limit for {provider}")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(408, f"body not received within {timeout_seconds:g} s") from None
    except ClientDisconnect:
        raise Refused(400, "client disconnected before the body was complete") from None
    return b"".join(chunks)


class CloseAfterRefusal:
    """Adds `Connection: close` to every error response, including the router's own 404/405:
    otherwise the server would keep reading (and discarding) whatever body the client still
    streams after the answer."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_closing)
