"""Serving the sandbox: in the foreground for `lending sandbox`, in a thread for tests."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class BackgroundServer:
    """A uvicorn server running an ASGI app in a daemon thread, for tests and benchmarks."""

    app: Starlette
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    health_path: str = "/_admin/health"

    def __post_init__(self) -> None:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + self.health_path, timeout=1).status_code < 500:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"server on {self.base_url} did not start within {timeout}s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
