"""Working on payout items without holding a transaction across a Stripe call.

Every step is its own short transaction, so PgBouncer in transaction mode and
`idle_in_transaction_session_timeout` are safe:

1. lease a chunk: a committed lease (`leased_by`, `lease_until`) taken with `FOR NO KEY UPDATE
   SKIP LOCKED`, so two workers or runs never work on one chunk; a worker that dies leaves a
   lease that runs out (or that the next run's planner releases once Dagster says the run
   ended);
2. claim an item: lock it (`SKIP LOCKED`), set `processing`, note when its current key
   generation was first sent (`key_sent_at`) — commit;
3. call Stripe, outside any transaction;
4. record the outcome in a new transaction, conditionally: an item already paid is never paid
   again, and its withdrawal ledger entry is unique per item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain import payouts as rules
from .tables import ledger_entries, payout_chunks, payout_items, withdrawal_requests

# --- chunk leases -------------------------------------------------------------------------------


def lease_next_chunk(
    engine: sa.Engine, batch_id: int, *, holder: str, run_id: str | None, lease_seconds: float
) -> int | None:
    """Lease the next pending chunk nobody holds and mark its pending items `processing`;
    returns its number, or None when every pending chunk is done or held."""
    with engine.begin() as conn:
        chunk_no = conn.execute(
            sa.text(
                """
                UPDATE lending.payout_chunks c
                SET leased_by = :holder,
                    lease_until = now() + make_interval(secs => :lease_seconds),
                    passes = c.passes + 1, started_at = now(), last_run_id = :run_id
                WHERE (c.batch_id, c.chunk_no) = (
                    SELECT batch_id, chunk_no FROM lending.payout_chunks
                    WHERE batch_id = :batch_id AND status = 'pending'
                      AND (lease_until IS NULL OR lease_until < now())
                    ORDER BY chunk_no
                    LIMIT 1
                    FOR NO KEY UPDATE SKIP LOCKED)
                RETURNING c.chunk_no
                """
            ),
            {
                "holder": holder,
                "lease_seconds": lease_seconds,
                "run_id": run_id,
                "batch_id": batch_id,
            },
        ).scalar_one_or_none()
        if chunk_no is not None:
            conn.execute(
                sa.update(payout_items)
                .where(
                    payout_items.c.batch_id == batch_id,
                    payout_items.c.chunk_no == chunk_no,
                    payout_items.c.status == "pending",
                )
                .values(
                    status="processing",
                    claimed_by=run_id,
                    claimed_at=sa.func.now(),
                    updated_at=sa.func.now(),
                )
            )
    return chunk_no


def chunk_item_ids(engine: sa.Engine, batch_id: int, chunk_no: int) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(payout_items.c.id)
                .where(
                    payout_items.c.batch_id == batch_id,
                    payout_items.c.chunk_no == chunk_no,
                    payout_items.c.status.in_(("pending", "processing")),
                )
                .order_by(payout_items.c.id)
            ).scalars()
        )


def release_chunk(engine: sa.Engine, batch_id: int, chunk_no: int, holder: str) -> None:
    """End a lease; the chunk is done when none of its items is pending or processing."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                UPDATE lending.payout_chunks c
                SET leased_by = NULL, lease_until = NULL,
                    status = CASE WHEN open.n = 0 THEN 'done' ELSE c.status END,
                    finished_at = CASE WHEN open.n = 0 THEN now() ELSE c.finished_at END
                FROM (SELECT count(*) AS n FROM lending.payout_items
                      WHERE batch_id = :batch_id AND chunk_no = :chunk_no
                        AND status IN ('pending', 'processing')) open
                WHERE c.batch_id = :batch_id AND c.chunk_no = :chunk_no AND c.leased_by = :holder
                """
            ),
            {"batch_id": batch_id, "chunk_no": chunk_no, "holder": holder},
        )


def leasing_runs(conn: Connection, batch_id: int) -> list[str]:
    """Run ids holding a live lease on a chunk of the batch."""
    return list(
        conn.execute(
            sa.select(payout_chunks.c.last_run_id)
            .where(
                payout_chunks.c.batch_id == batch_id,
                payout_chunks.c.lease_until > sa.func.now(),
                payout_chunks.c.last_run_id.is_not(None),
            )
            .distinct()
        ).scalars()
    )


def release_leases_of_runs(conn: Connection, batch_id: int, run_ids: Sequence[str]) -> int:
    """Drop the leases of runs known to have ended (a killed worker's chunk is free again)."""
    if not run_ids:
        return 0
    return conn.execute(
        sa.update(payout_chunks)
        .where(
            payout_chunks.c.batch_id == batch_id,
            payout_chunks.c.last_run_id.in_(list(run_ids)),
            payout_chunks.c.lease_until.is_not(None),
        )
        .values(leased_by=None, lease_until=None)
    ).rowcount


# --- items ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedItem:
    id: int
    batch_id: int
    chunk_no: int
    creator_id: int
    payout_date: date
    idempotency_key: str
    tokens: int
    amount_minor: int
    currency: str
    destination_account: str
    status: str  # as found, before the claim
    attempts: int
    key_generation: int
    error_kind: str | None
    outcome_unknown: bool
    error_replayed: bool
    key_sent_at: datetime | None
    key_age_hours: float | None  # since the current generation was first sent; None: never

    @property
    def stripe_key(self) -> str:
        return rules.stripe_idempotency_key(self.idempotency_key, self.key_generation)

    @property
    def key_may_be_pruned(self) -> bool:
        """Sent long enough ago that Stripe may have forgotten the key: look before sending."""
        return self.key_age_hours is not None and (
            self.key_age_hours >= rules.IDEMPOTENCY_TRUST_HOURS
        )


_LOCK_ITEM_SQL = """
    SELECT i.id, i.batch_id, i.chunk_no, i.creator_id, b.payout_date, i.idempotency_key,
           i.tokens, i.amount_minor, i.currency, i.destination_account, i.status, i.attempts,
           i.key_generation, i.error_kind, i.outcome_unknown, i.error_replayed, i.key_sent_at,
           -- from the key's first send; an older attempt on record (rows from before
           -- key_sent_at existed) only makes it older, never younger
           (extract(epoch FROM now() - least(i.key_sent_at, i.last_attempt_at)) / 3600)::float
               AS key_age_hours
    FROM lending.payout_items i
    JOIN lending.payout_batches b ON b.id = i.batch_id
    WHERE i.id = :item_id AND i.status IN :statuses
    FOR NO KEY UPDATE OF i SKIP LOCKED
"""


def lock_item(conn: Connection, item_id: int, statuses: Sequence[str]) -> ClaimedItem | None:
    """Lock one item in one of `statuses` until the transaction ends, or None (moved on, or
    locked by someone else)."""
    row = conn.execute(
        sa.text(_LOCK_ITEM_SQL).bindparams(sa.bindparam("statuses", expanding=True)),
        {"item_id": item_id, "statuses": list(statuses)},
    ).first()
    return None if row is None else ClaimedItem(**row._mapping)


def mark_claimed(
    conn: Connection, item: ClaimedItem, *, run_id: str | None, sending: bool
) -> ClaimedItem:
    """Set the locked item `processing` for this worker; `sending`: its key goes to Stripe
    next, so the generation's first send is noted now (before the call, never after)."""
    values: dict = {
        "status": "processing",
        "claimed_by": run_id,
        "claimed_at": sa.func.now(),
        "updated_at": sa.func.now(),
    }
    if sending:
        values["key_sent_at"] = sa.func.coalesce(payout_items.c.key_sent_at, sa.func.now())
        values["last_attempt_at"] = sa.func.now()
    sent_at = conn.execute(
        sa.update(payout_items)
        .where(payout_items.c.id == item.id)
        .values(**values)
        .returning(payout_items.c.key_sent_at)
    ).scalar_one()
    return replace(item, key_sent_at=sent_at)


def claim_item(
    engine: sa.Engine,
    item_id: int,
    statuses: Sequence[str],
    *,
    run_id: str | None,
    lease: tuple[int, int, str, float] | None = None,
) -> ClaimedItem | None:
    """One short transaction: lock, set processing (noting the key's first send unless the key
    is old enough to need a lookup first), renew the chunk lease."""
    with engine.begin() as conn:
        item = lock_item(conn, item_id, statuses)
        if item is None:
            return None
        item = mark_claimed(conn, item, run_id=run_id, sending=not item.key_may_be_pruned)
        if lease is not None:
            batch_id, chunk_no, holder, seconds = lease
            conn.execute(
                sa.update(payout_chunks)
                .where(
                    payout_chunks.c.batch_id == batch_id,
                    payout_chunks.c.chunk_no == chunk_no,
                    payout_chunks.c.leased_by == holder,
                )
                .values(
                    lease_until=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)
                )
            )
    return item


def start_new_key_generation(conn: Connection, item: ClaimedItem) -> ClaimedItem | None:
    """After confirming Stripe holds no transfer for the item: the next attempt uses a new key,
    sent now. Compare-and-set on the generation: None when another worker moved it on."""
    row = conn.execute(
        sa.update(payout_items)
        .where(
            payout_items.c.id == item.id,
            payout_items.c.key_generation == item.key_generation,
            payout_items.c.status == "processing",
        )
        .values(
            key_generation=payout_items.c.key_generation + 1,
            key_sent_at=sa.func.now(),
            last_attempt_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
        .returning(payout_items.c.key_generation, payout_items.c.key_sent_at)
    ).first()
    if row is None:
        return None
    return replace(item, key_generation=row.key_generation, key_sent_at=row.key_sent_at)


def record_item_paid(
    conn: Connection, item: ClaimedItem, *, transfer_id: str, counted_attempt: bool = True
) -> bool:
    """Item paid, its withdrawal ledger entry, its withdrawal requests completed — together,
    and only if the item is not paid yet (False: someone recorded it first)."""
    paid = conn.execute(
        sa.update(payout_items)
        .where(
            payout_items.c.id == item.id,
            payout_items.c.status.in_(("pending", "processing", "failed")),
        )
        .values(
            status="paid",
            stripe_transfer_id=transfer_id,
            paid_at=sa.func.now(),
            attempts=payout_items.c.attempts + (1 if counted_attempt else 0),
            error_kind=None,
            error_code=None,
            error_message=None,
            retryable=None,
            outcome_unknown=False,
            error_replayed=False,
            updated_at=sa.func.now(),
        )
        .returning(payout_items.c.id)
    ).first()
    if paid is None:
        return False
    conn.execute(
        sa.insert(ledger_entries).values(
            creator_id=item.creator_id,
            entry_type="withdrawal_completed",
            tokens=-item.tokens,
            created_at=sa.func.now(),
            available_at=sa.func.now(),
            payout_item_id=item.id,
            reference=transfer_id,
            description=f"payout {item.payout_date.isoformat()}",
        )
    )
    conn.execute(
        sa.update(withdrawal_requests)
        .where(
            withdrawal_requests.c.payout_item_id == item.id,
            withdrawal_requests.c.status == "in_batch",
        )
        .values(status="completed", updated_at=sa.func.now())
    )
    return True


def record_item_failed(
    conn: Connection,
    item: ClaimedItem,
    *,
    kind: str,
    code: str | None,
    message: str,
    retryable: bool,
    outcome_unknown: bool,
    replayed: bool,
) -> bool:
    """The attempt failed; never overwrites an item someone recorded paid meanwhile."""
    return (
        conn.execute(
            sa.update(payout_items)
            .where(payout_items.c.id == item.id, payout_items.c.status == "processing")
            .values(
                status="failed",
                error_kind=kind,
                error_code=code,
                error_message=message[:2000],
                retryable=retryable,
                outcome_unknown=outcome_unknown,
                error_replayed=replayed,
                attempts=payout_items.c.attempts + 1,
                last_attempt_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
        ).rowcount
        == 1
    )


def error_replayed(engine: sa.Engine, item_id: int) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.select(payout_items.c.error_replayed).where(payout_items.c.id == item_id)
            ).scalar_one()
        )


def retry_candidates(
    conn: Connection,
    *,
    retry_final_kinds: Sequence[str],
    max_attempts: int,
    limit: int,
    stuck_after_seconds: float,
) -> list[int]:
    """What the daily retry acts on, oldest payout date first: failed items that are retryable
    (or of a final kind an operator listed) under the attempt limit, and items stuck in
    `processing` — claimed longer ago than a lease lasts, in a chunk nobody holds."""
    return list(
        conn.execute(
            sa.text(
                """
                SELECT i.id FROM lending.payout_items i
                JOIN lending.payout_batches b ON b.id = i.batch_id
                JOIN lending.payout_chunks c ON c.batch_id = i.batch_id AND c.chunk_no = i.chunk_no
                WHERE (i.status = 'failed' AND i.attempts < :max_attempts
                       AND (i.retryable OR i.error_kind = ANY(CAST(:final_kinds AS text[]))))
                   OR (i.status = 'processing'
                       AND coalesce(i.claimed_at, i.updated_at)
                           < now() - make_interval(secs => :stuck_after)
                       AND (c.lease_until IS NULL OR c.lease_until < now()))
                ORDER BY b.payout_date, i.id
                LIMIT :limit
                """
            ),
            {
                "max_attempts": max_attempts,
                "final_kinds": list(retry_final_kinds),
                "stuck_after": stuck_after_seconds,
                "limit": limit,
            },
        ).scalars()
    )
