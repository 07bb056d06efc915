"""Apply and revert the Alembic migrations programmatically (no alembic.ini needed).

Workflow migrations branch from `0001_foundation` and are applied together with `heads`.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .meta import SCHEMA

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(url: str, target: str = "heads") -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, hide_parameters=True)
    try:
        with engine.begin() as conn:
            # One migrator at a time, even when a test session and `make dev` start together.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727001)"))
            command.upgrade(_config(conn), target)
    finally:
        engine.dispose()


def downgrade(url: str, target: str = "base") -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, hide_parameters=True)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727001)"))
            command.downgrade(_config(conn), target)
    finally:
        engine.dispose()


def current_revisions(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, hide_parameters=True)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table_schema": SCHEMA})
            return set(context.get_current_heads())
    finally:
        engine.dispose()


def head_revisions() -> set[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(config).get_heads())
