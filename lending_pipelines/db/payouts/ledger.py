"""Creators, their token ledger entries and withdrawal requests (seed data and tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ...domain import payouts as rules
from .tables import (
    creators,
    ledger_entries,
    withdrawal_requests,
)


def upsert_creators(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert or update creators by external_ref; returns external_ref → id."""
    if not rows:
        return {}
    stmt = insert(creators).values(list(rows))
    updatable = {k for row in rows for k in row} - {"external_ref"}
    stmt = stmt.on_conflict_do_update(
        index_elements=[creators.c.external_ref],
        set_={**{k: stmt.excluded[k] for k in updatable}, "updated_at": sa.func.now()},
    )
    result = conn.execute(stmt.returning(creators.c.external_ref, creators.c.id))
    return {ref: creator_id for ref, creator_id in result}


def add_ledger_entries(conn: Connection, rows: Sequence[dict[str, Any]], *, hold_days: int) -> None:
    """Append ledger entries (creator_id, entry_type, tokens, created_at[, reference,
    description]); `available_at` follows the chargeback hold (domain.payouts.available_at)."""
    if not rows:
        return
    prepared = []
    for row in rows:
        created_at = row["created_at"]
        prepared.append(
            {
                "reference": None,
                "description": None,
                **row,
                "available_at": rules.available_at(row["entry_type"], created_at, hold_days),
            }
        )
    conn.execute(sa.insert(ledger_entries), prepared)


def add_withdrawal_requests(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(sa.insert(withdrawal_requests), list(rows))
