"""Serving the receiver: uvicorn with the limits a public callback endpoint needs.

uvicorn bounds neither how long a client may take to send its request headers nor how many
connections it keeps open, so `GuardedH11Protocol` adds both: a connection whose headers are not
complete within the request timeout (from its first byte or from its previous response) is
closed with 408, and a connection over the cap is answered 503 and closed at once. The body has
its own deadline and size cap in `limits.read_body`. uvicorn's access log (which would print the
M-Pesa path token) is off; `access_log.RedactedAccessLog` logs requests instead. The receiver
speaks plain HTTP on its bind address: TLS terminates at the proxy in front of it.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

TOO_MANY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class GuardedH11Protocol(H11Protocol):
    header_timeout_seconds: float = 10.0
    max_connections: int = 200

    _headers_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("connection refused: %d open connections is the cap", self.max_connections)
            transport.write(TOO_MANY)
            transport.close()
            return
        self._arm_headers_deadline()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request's headers are complete
            self._cancel_headers_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle is not None:
            self._arm_headers_deadline()  # the next request on this connection has its own

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers_deadline()
        super().connection_lost(exc)

    def _arm_headers_deadline(self) -> None:
        self._cancel_headers_deadline()
        self._headers_deadline = self.loop.call_later(
            self.header_timeout_seconds, self._headers_too_slow
        )

    def _cancel_headers_deadline(self) -> None:
        if self._headers_deadline is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _headers_too_slow(self) -> None:
        self._headers_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being handled: its body has its own deadline
        log.warning(
            "connection closed: request headers not received within %gs",
            self.header_timeout_seconds,
        )
        self.transport.write(TOO_SLOW)
        self.transport.close()


def receiver_config(
    app,
    host: str,
    port: int,
    *,
    request_timeout_seconds: float = 10.0,
    max_connections: int = 200,
    log_level: str = "info",
) -> uvicorn.Config:
    protocol = type(
        "ReceiverProtocol",
        (GuardedH11Protocol,),
        {"header_timeout_seconds": request_timeout_seconds, "max_connections": max_connections},
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        access_log=False,
        # uvicorn would otherwise trust X-Forwarded-For from 127.0.0.1 and rewrite the client
        # address; networks.py reads it only from LENDING_WEBHOOKS_TRUSTED_PROXIES.
        proxy_headers=False,
        log_level=log_level,
        timeout_keep_alive=5,
        # Past the cap the protocol refuses the connection; this bounds requests in flight too.
        limit_concurrency=max_connections + 1,
        backlog=max_connections,
        timeout_graceful_shutdown=5,
    )
