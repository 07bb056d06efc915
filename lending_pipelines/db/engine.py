"""One SQLAlchemy engine per process and URL, with the session settings every connection needs."""

from __future__ import annotations

import threading

import sqlalchemy as sa

_engines: dict[tuple[str, int], sa.Engine] = {}
_lock = threading.Lock()


def get_engine(url: str, statement_timeout_ms: int = 30_000) -> sa.Engine:
    """The process's engine for `url` (created once; pre-ping survives server restarts)."""
    key = (url, statement_timeout_ms)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                # Bound values (phone numbers, names) never reach exceptions, Dagster events
                # or alerts; the SQL text still names the statement that failed.
                hide_parameters=True,
                pool_size=5,
                max_overflow=10,
                connect_args={
                    "options": f"-c statement_timeout={statement_timeout_ms}",
                    "application_name": "lending_pipelines",
                },
            )
            _engines[key] = engine
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
