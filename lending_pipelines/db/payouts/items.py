"""Queries over a batch's items and chunks: failures, ledger mismatches, open chunks."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .tables import (
    payout_chunks,
    payout_items,
)


def failed_items(conn: Connection, batch_id: int, limit: int = 50) -> list[sa.Row]:
    return list(
        conn.execute(
            sa.select(
                payout_items.c.creator_id,
                payout_items.c.idempotency_key,
                payout_items.c.amount_minor,
                payout_items.c.error_kind,
                payout_items.c.error_code,
                payout_items.c.error_message,
                payout_items.c.retryable,
                payout_items.c.attempts,
            )
            .where(
                payout_items.c.batch_id == batch_id,
                payout_items.c.status.in_(("failed", "reversed")),
            )
            .order_by(payout_items.c.creator_id)
            .limit(limit)
        )
    )


def ledger_transfer_mismatches(conn: Connection, batch_id: int) -> list[str]:
    """Paid items without exactly one matching withdrawal entry, or entries without a paid
    item: ledger entries must match transfers one to one."""
    rows = conn.execute(
        sa.text(
            """
            SELECT i.idempotency_key, i.status, i.stripe_transfer_id, i.tokens,
                   le.reference, le.tokens AS entry_tokens
            FROM lending.payout_items i
            LEFT JOIN lending.ledger_entries le ON le.payout_item_id = i.id
            WHERE i.batch_id = :batch_id
              AND ((i.status IN ('paid', 'reversed')
                    AND (le.id IS NULL OR le.reference <> i.stripe_transfer_id
                         OR le.tokens <> -i.tokens))
                   OR (i.status NOT IN ('paid', 'reversed') AND le.id IS NOT NULL))
            ORDER BY i.idempotency_key
            """
        ),
        {"batch_id": batch_id},
    )
    return [
        f"{r.idempotency_key}: item {r.status} transfer {r.stripe_transfer_id}, ledger "
        f"{r.reference} {r.entry_tokens} tokens (item {r.tokens})"
        for r in rows
    ]


# --- chunks and items -------------------------------------------------------------------------


def open_chunk_count(conn: Connection, batch_id: int) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(
            payout_chunks.c.batch_id == batch_id, payout_chunks.c.status == "pending"
        )
    ).scalar_one()


def batches_of_items(conn: Connection, item_ids: Sequence[int]) -> list[int]:
    if not item_ids:
        return []
    return list(
        conn.execute(
            sa.select(payout_items.c.batch_id)
            .where(payout_items.c.id.in_(list(item_ids)))
            .distinct()
        ).scalars()
    )
