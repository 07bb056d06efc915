"""Daraja OAuth tokens, shared per process by every client of the same app."""

from __future__ import annotations

import threading


class TokenCache:
    """One token per (base URL, consumer key) per process: Daraja may invalidate the previous
    token whenever a new one is minted, so clients of the same app must share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, key: tuple[str, str], now: float) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
        return entry[0] if entry and entry[1] > now else None

    def put(self, key: tuple[str, str], token: str, valid_until: float) -> None:
        with self._lock:
            self._tokens[key] = (token, valid_until)

    def drop(self, key: tuple[str, str], token: str | None = None) -> None:
        with self._lock:
            entry = self._tokens.get(key)
            if entry and (token is None or entry[0] == token):
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKEN_CACHE = TokenCache()
