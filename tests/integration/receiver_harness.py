"""The callback receiver served by a real uvicorn server in a thread, with its server limits.

Like BackgroundServer, but built from `webhooks.serve.receiver_config`, so the header
deadline, connection cap and access-log redaction the CLI uses are the ones under test.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from lending_dev.sandbox.server import free_port

TWILIO_TOKEN = "receiver-test-twilio-auth-token-0"
MPESA_TOKEN = "cb-token-7f3a9c-receiver-0123456789"
WHSEC = "whsec_test_receiver"
SID = "SM" + "a" * 32


class ReceiverThread:
    def __init__(self, app, **limits) -> None:
        from lending_pipelines.webhooks.serve import receiver_config

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            receiver_config(app, "127.0.0.1", self.port, log_level="warning", **limits)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ReceiverThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base_url}/health", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("receiver did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented scheme, written out here independently of the receiver's code."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_form(sid: str = SID, status: str = "delivered") -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0d" * 16,
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": "whatsapp:+254711000111",
    }


def post_twilio(base_url: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> httpx.Response:
    url = f"{base_url}/twilio/status"
    return httpx.post(
        url, data=form, headers={"X-Twilio-Signature": twilio_signature(token, url, form)}
    )


def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it or times out."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):  # the server hung up
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def stream(total_bytes: int, chunk_bytes: int = 1 << 20, sent: list[int] | None = None) -> Iterator:
    """A request body generator: `total_bytes` from one reused chunk, never held whole."""
    chunk = b"x" * chunk_bytes
    remaining = total_bytes
    while remaining > 0:
        piece = chunk if remaining >= chunk_bytes else chunk[:remaining]
        remaining -= len(piece)
        if sent is not None:
            sent[0] += len(piece)
        yield piece
