"""Demo data for `make dev`: every seeder is idempotent (safe to run at every start)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Connection

from lending_pipelines.settings import Settings

from .collections import seed_collections
from .credit import seed_credit
from .escrow import seed_escrow
from .loans import seed_loans
from .payouts import seed_payouts

Seeder = Callable[[Connection, Settings], None]

SEEDERS: list[Seeder] = [seed_loans, seed_credit, seed_escrow, seed_payouts, seed_collections]


def seed_all(conn: Connection, settings: Settings) -> list[str]:
    """Run every workflow's seeder in one transaction; returns their names."""
    for seeder in SEEDERS:
        seeder(conn, settings)
    return [seeder.__module__.rsplit(".", 1)[-1] for seeder in SEEDERS]
