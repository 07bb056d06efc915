"""The operational database as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from dagster import ConfigurableResource
from pydantic import Field

from ..db.engine import get_engine
from ..db.server import operational_url
from ..settings import get_settings


class DatabaseResource(ConfigurableResource):
    """PostgreSQL holding the `lending` schema.

    `url` unset means LENDING_DATABASE_URL, or the embedded server when that is unset too.
    The engine is created once per process (runs and steps are separate processes).
    """

    url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset: LENDING_DATABASE_URL or embedded."
    )
    statement_timeout_ms: int = Field(default=30_000, ge=1)

    def get_engine(self) -> sa.Engine:
        return get_engine(self.url or operational_url(get_settings()), self.statement_timeout_ms)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection in a transaction, committed on success and rolled back on error."""
        with self.get_engine().begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self.get_engine().connect() as conn:
            yield conn
