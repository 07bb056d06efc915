"""The receiver's access log, with the M-Pesa path token redacted.

uvicorn's own access log prints the raw path, and the path token is the only secret guarding
the M-Pesa callback URLs; so the server's access log is off (see serve.py) and this middleware
logs each request instead, with every `/mpesa/<token>/` segment written `/mpesa/***/`.
"""

from __future__ import annotations

import logging
import re
import time

log = logging.getLogger("lending_pipelines.webhooks.access")

TOKEN_SEGMENT = re.compile(r"^/mpesa/[^/]*")


def redact(path: str) -> str:
    return TOKEN_SEGMENT.sub("/mpesa/***", path)


class RedactedAccessLog:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = [0]

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info(
                '%s - "%s %s" %d %.0fms',
                client[0],
                scope["method"],
                redact(scope["path"]),
                status[0],
                (time.monotonic() - started) * 1000,
            )
