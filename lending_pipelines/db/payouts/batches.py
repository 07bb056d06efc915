"""Freezing a payout date's evaluation into one batch of items in chunks, its totals and its
invariants (the blocking checks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ...domain import payouts as rules
from ...domain.money import minor_units_per_token
from . import claims
from .eligibility import _lock_payout_date
from .tables import (
    PayoutStateError,
    payout_batches,
    payout_evaluations,
)


@dataclass(frozen=True)
class BatchTotals:
    batch_id: int
    payout_date: date
    status: str
    currency: str
    item_count: int
    pending_count: int
    paid_count: int
    failed_count: int
    total_tokens: int
    total_amount_minor: int
    paid_amount_minor: int
    failed_amount_minor: int


def _totals(row: sa.Row) -> BatchTotals:
    return BatchTotals(**{name: row._mapping[name] for name in BatchTotals.__dataclass_fields__})


def _batch_columns():
    return [
        payout_batches.c.id.label("batch_id"),
        *[
            payout_batches.c[name]
            for name in BatchTotals.__dataclass_fields__
            if name != "batch_id"
        ],
    ]


def get_batch(conn: Connection, payout_date: date) -> BatchTotals | None:
    row = conn.execute(
        sa.select(*_batch_columns()).where(payout_batches.c.payout_date == payout_date)
    ).first()
    return None if row is None else _totals(row)


def latest_batch(conn: Connection) -> BatchTotals | None:
    row = conn.execute(
        sa.select(*_batch_columns()).order_by(payout_batches.c.payout_date.desc()).limit(1)
    ).first()
    return None if row is None else _totals(row)


@dataclass(frozen=True)
class BatchCreation:
    totals: BatchTotals
    created: bool  # False: the batch existed; nothing new was written
    claims_reduced: int = 0  # proposals shrunk to what other dates had left unclaimed
    claims_dropped: int = 0  # proposals dropped: other dates had claimed the tokens


def create_batch(
    conn: Connection,
    *,
    payout_date: date,
    chunk_size: int,
    run_id: str | None = None,
) -> BatchCreation:
    """Freeze the evaluated eligibility of `payout_date` into a batch, its items and chunks.

    The evaluation is re-checked under one row lock per creator first
    (`claims.claim_creator_tokens`): tokens another payout date claimed meanwhile are
    not claimed again, whatever runs overlap.

    Idempotent: when the batch exists nothing is written (a second run, concurrent or later,
    creates no second batch or item)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size is {chunk_size}, expected >= 1")
    _lock_payout_date(conn, payout_date)
    existing = get_batch(conn, payout_date)
    if existing is not None:
        return BatchCreation(existing, created=False)
    evaluation = conn.execute(
        sa.select(payout_evaluations).where(payout_evaluations.c.payout_date == payout_date)
    ).first()
    if evaluation is None:
        raise PayoutStateError(
            f"payout date {payout_date}: eligibility was never evaluated; materialize "
            "eligible_creators for this partition first"
        )
    claim = claims.claim_creator_tokens(
        conn,
        payout_date=payout_date,
        as_of=evaluation.as_of,
        minimum_tokens=evaluation.minimum_tokens,
        minor_per_token=minor_units_per_token(evaluation.token_rate, evaluation.currency),
    )
    batch_id = conn.execute(
        insert(payout_batches)
        .values(
            payout_date=payout_date,
            batch_hash=rules.batch_hash(payout_date),
            currency=evaluation.currency,
            token_rate=evaluation.token_rate,
            created_by_run_id=run_id,
        )
        .returning(payout_batches.c.id)
    ).scalar_one()
    params = {
        "batch_id": batch_id,
        "payout_date": payout_date,
        "batch_key": rules.batch_key(payout_date),
        "chunk_size": chunk_size,
    }
    conn.execute(
        sa.text(
            """
            INSERT INTO lending.payout_items (
                batch_id, creator_id, idempotency_key, chunk_no, tokens, amount_minor, currency,
                destination_account)
            SELECT :batch_id, e.creator_id, :batch_key || ':' || e.creator_id,
                   ((row_number() OVER (ORDER BY e.creator_id)) - 1) / :chunk_size,
                   e.payout_tokens, e.amount_minor, e.currency, e.destination_account
            FROM lending.payout_eligibility e
            WHERE e.payout_date = :payout_date AND e.reason IS NULL
            ON CONFLICT (idempotency_key) DO NOTHING
            """
        ),
        params,
    )
    conn.execute(
        sa.text(
            """
            UPDATE lending.withdrawal_requests r
            SET status = 'in_batch', payout_item_id = i.id, updated_at = now()
            FROM lending.payout_eligibility e
            JOIN lending.payout_items i ON i.batch_id = :batch_id AND i.creator_id = e.creator_id
            WHERE e.payout_date = :payout_date AND e.reason IS NULL
              AND r.id = ANY(e.withdrawal_request_ids) AND r.status = 'pending'
            """
        ),
        params,
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO lending.payout_chunks (batch_id, chunk_no, item_count)
            SELECT batch_id, chunk_no, count(*) FROM lending.payout_items
            WHERE batch_id = :batch_id GROUP BY batch_id, chunk_no
            """
        ),
        params,
    )
    return BatchCreation(
        refresh_batch_totals(conn, batch_id),
        created=True,
        claims_reduced=claim["reduced"],
        claims_dropped=claim["dropped"],
    )


def refresh_batch_totals(conn: Connection, batch_id: int) -> BatchTotals:
    """Recompute a batch's counts, amounts and status from its items (one statement)."""
    row = conn.execute(
        sa.text(
            """
            WITH s AS (
                SELECT count(*) AS items,
                       count(*) FILTER (WHERE status IN ('pending', 'processing')) AS open,
                       count(*) FILTER (WHERE status = 'paid') AS paid,
                       count(*) FILTER (WHERE status IN ('failed', 'reversed')) AS failed,
                       coalesce(sum(tokens), 0) AS tokens,
                       coalesce(sum(amount_minor), 0) AS amount,
                       coalesce(sum(amount_minor) FILTER (WHERE status = 'paid'), 0) AS paid_amount,
                       coalesce(sum(amount_minor) FILTER (
                           WHERE status IN ('failed', 'reversed')), 0) AS failed_amount
                FROM lending.payout_items WHERE batch_id = :batch_id
            )
            UPDATE lending.payout_batches b
            SET item_count = s.items, pending_count = s.open, paid_count = s.paid,
                failed_count = s.failed, total_tokens = s.tokens, total_amount_minor = s.amount,
                paid_amount_minor = s.paid_amount, failed_amount_minor = s.failed_amount,
                status = CASE WHEN s.open > 0 THEN 'processing'
                              WHEN s.failed > 0 THEN 'completed_with_failures'
                              ELSE 'completed' END,
                completed_at = CASE WHEN s.open > 0 THEN NULL
                                    ELSE coalesce(b.completed_at, now()) END,
                updated_at = now()
            FROM s
            WHERE b.id = :batch_id
            RETURNING b.id AS batch_id, b.payout_date, b.status, b.currency, b.item_count,
                      b.pending_count, b.paid_count, b.failed_count, b.total_tokens,
                      b.total_amount_minor, b.paid_amount_minor, b.failed_amount_minor
            """
        ),
        {"batch_id": batch_id},
    ).one()
    return _totals(row)


@dataclass(frozen=True)
class BatchInvariants:
    stored_total_minor: int
    items_total_minor: int
    stored_item_count: int
    item_count: int
    duplicate_creators: list[int]
    creators_in_other_open_batches: list[int]
    overdrawn_creators: list[int]  # open items of every date claim more than the balance

    @property
    def no_creator_twice(self) -> bool:
        return not self.duplicate_creators and not self.overdrawn_creators

    @property
    def totals_match(self) -> bool:
        return (
            self.stored_total_minor == self.items_total_minor
            and self.stored_item_count == self.item_count
        )


def batch_invariants(conn: Connection, batch_id: int) -> BatchInvariants:
    """What the blocking checks before transfers verify: the batch total is the sum of its
    items; no creator appears twice in the batch, and no creator's open items across every
    payout date claim more tokens than their balance holds."""
    row = conn.execute(
        sa.text(
            """
            SELECT b.total_amount_minor AS stored_total, b.item_count AS stored_count,
                   (SELECT coalesce(sum(amount_minor), 0)::bigint FROM lending.payout_items
                     WHERE batch_id = b.id) AS items_total,
                   (SELECT count(*) FROM lending.payout_items WHERE batch_id = b.id) AS items,
                   (SELECT coalesce(array_agg(creator_id), '{}') FROM (
                        SELECT creator_id FROM lending.payout_items WHERE batch_id = b.id
                        GROUP BY creator_id HAVING count(*) > 1) d) AS duplicates,
                   (SELECT coalesce(array_agg(DISTINCT i.creator_id), '{}')
                      FROM lending.payout_items i
                      JOIN lending.payout_items o ON o.creator_id = i.creator_id
                           AND o.batch_id <> i.batch_id
                           AND o.status IN ('pending', 'processing')
                     WHERE i.batch_id = b.id) AS elsewhere
            FROM lending.payout_batches b WHERE b.id = :batch_id
            """
        ),
        {"batch_id": batch_id},
    ).one()
    return BatchInvariants(
        stored_total_minor=row.stored_total,
        items_total_minor=row.items_total,
        stored_item_count=row.stored_count,
        item_count=row.items,
        duplicate_creators=sorted(row.duplicates),
        creators_in_other_open_batches=sorted(row.elsewhere),
        overdrawn_creators=claims.overdrawn_creators(conn, batch_id),
    )
