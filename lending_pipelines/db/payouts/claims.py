"""Claiming a creator's tokens for one payout date, safely against every other date.

An evaluation (`payout_eligibility`) is a proposal made at some moment; other payout dates may
create their items between that moment and this date's batch. So the batch does not freeze the
proposal as it stands: inside the batch-creation transaction it

1. locks the row of every proposed creator (`FOR NO KEY UPDATE`, in id order, so two dates
   never deadlock) — every batch creation of every date takes the same per-creator locks, so two
   dates claiming one creator's tokens run one after the other;
2. then, in a new statement (READ COMMITTED: a snapshot taken after the locks were granted, so
   it sees every item the other date committed), recomputes each creator's available balance
   from the ledger (paid items are withdrawal entries there) minus every open item of every
   date, and shrinks the proposal to it — or drops the creator with the reason
   `reserved_by_other_date` when what is left is below the minimum.

A proposal can only shrink, never grow: a stale evaluation can never be frozen.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

RESERVED_BY_OTHER_DATE = "reserved_by_other_date"

_LOCK_SQL = sa.text(
    """
    SELECT c.id FROM lending.creators c
    WHERE c.id IN (SELECT creator_id FROM lending.payout_eligibility
                   WHERE payout_date = :payout_date AND reason IS NULL)
    ORDER BY c.id
    FOR NO KEY UPDATE OF c
    """
)

_CLAIM_SQL = sa.text(
    """
    WITH bal AS (
        SELECT creator_id,
               coalesce(sum(tokens) FILTER (WHERE tokens < 0 OR available_at <= :as_of), 0)
                   AS available
        FROM lending.ledger_entries
        WHERE creator_id = ANY(CAST(:ids AS bigint[]))
        GROUP BY creator_id
    ),
    reserved AS (
        SELECT creator_id, sum(tokens) AS tokens
        FROM lending.payout_items
        WHERE creator_id = ANY(CAST(:ids AS bigint[]))
          AND status IN ('pending', 'processing', 'failed')
        GROUP BY creator_id
    ),
    fresh AS (
        SELECT e.creator_id, e.payout_tokens,
               coalesce(bal.available, 0) - coalesce(r.tokens, 0) AS available
        FROM lending.payout_eligibility e
        LEFT JOIN bal ON bal.creator_id = e.creator_id
        LEFT JOIN reserved r ON r.creator_id = e.creator_id
        WHERE e.payout_date = :payout_date AND e.reason IS NULL
          AND e.creator_id = ANY(CAST(:ids AS bigint[]))
    ),
    claim AS (
        SELECT creator_id, available,
               least(payout_tokens, greatest(available, 0)) AS tokens,
               floor(least(payout_tokens, greatest(available, 0))
                     * CAST(:minor_per_token AS numeric))::bigint AS amount
        FROM fresh
        WHERE available < payout_tokens
    ),
    changed AS (
        UPDATE lending.payout_eligibility e
        SET available_tokens = claim.available,
            reason = CASE WHEN claim.available >= :minimum AND claim.amount >= 1 THEN NULL
                          ELSE :reserved_reason END,
            payout_tokens = CASE WHEN claim.available >= :minimum AND claim.amount >= 1
                                 THEN claim.tokens ELSE 0 END,
            amount_minor = CASE WHEN claim.available >= :minimum AND claim.amount >= 1
                                THEN claim.amount ELSE 0 END,
            withdrawal_request_ids = CASE WHEN claim.available >= :minimum AND claim.amount >= 1
                                          THEN e.withdrawal_request_ids ELSE '{}' END
        FROM claim
        WHERE e.payout_date = :payout_date AND e.creator_id = claim.creator_id
        RETURNING e.reason
    )
    SELECT count(*) FILTER (WHERE reason IS NULL) AS reduced,
           count(*) FILTER (WHERE reason IS NOT NULL) AS dropped
    FROM changed
    """
)

_OUTCOMES_SQL = sa.text(
    """
    SELECT coalesce(reason, 'eligible') AS outcome, count(*) AS creators,
           coalesce(sum(payout_tokens), 0)::bigint AS tokens,
           coalesce(sum(amount_minor), 0)::bigint AS amount_minor
    FROM lending.payout_eligibility WHERE payout_date = :payout_date
    GROUP BY 1 ORDER BY 1
    """
)


def claim_creator_tokens(
    conn: Connection,
    *,
    payout_date: date,
    as_of: datetime,
    minimum_tokens: int,
    minor_per_token: Decimal,
) -> dict[str, int]:
    """Lock the proposed creators, then shrink or drop proposals to what is still unclaimed.

    Must run in the batch-creation transaction, before the items are inserted; the locks are
    held until that transaction commits. Returns {"locked", "reduced", "dropped"} counts."""
    ids = list(conn.execute(_LOCK_SQL, {"payout_date": payout_date}).scalars())
    if not ids:
        return {"locked": 0, "reduced": 0, "dropped": 0}
    row = conn.execute(
        _CLAIM_SQL,
        {
            "ids": ids,
            "payout_date": payout_date,
            "as_of": as_of,
            "minimum": minimum_tokens,
            "minor_per_token": minor_per_token,
            "reserved_reason": RESERVED_BY_OTHER_DATE,
        },
    ).one()
    if row.reduced or row.dropped:
        outcomes = {
            r.outcome: {"creators": r.creators, "tokens": r.tokens, "amount_minor": r.amount_minor}
            for r in conn.execute(_OUTCOMES_SQL, {"payout_date": payout_date})
        }
        conn.execute(
            sa.text(
                "UPDATE lending.payout_evaluations SET outcomes = CAST(:outcomes AS jsonb) "
                "WHERE payout_date = :payout_date"
            ),
            {"outcomes": json.dumps(outcomes), "payout_date": payout_date},
        )
    return {"locked": len(ids), "reduced": row.reduced, "dropped": row.dropped}


def overdrawn_creators(conn: Connection, batch_id: int) -> list[int]:
    """Creators of this batch whose open items, over every payout date, claim more tokens than
    their ledger balance holds (every debit, and credits available by now)."""
    return list(
        conn.execute(
            sa.text(
                """
                WITH mine AS (SELECT DISTINCT creator_id FROM lending.payout_items
                              WHERE batch_id = :batch_id),
                open AS (
                    SELECT i.creator_id, sum(i.tokens) AS tokens
                    FROM lending.payout_items i JOIN mine USING (creator_id)
                    WHERE i.status IN ('pending', 'processing', 'failed')
                    GROUP BY i.creator_id
                ),
                bal AS (
                    SELECT le.creator_id,
                           sum(le.tokens) FILTER (WHERE le.tokens < 0 OR le.available_at <= now())
                               AS available
                    FROM lending.ledger_entries le JOIN mine USING (creator_id)
                    GROUP BY le.creator_id
                )
                SELECT open.creator_id FROM open
                LEFT JOIN bal ON bal.creator_id = open.creator_id
                WHERE open.tokens > coalesce(bal.available, 0)
                ORDER BY open.creator_id
                """
            ),
            {"batch_id": batch_id},
        ).scalars()
    )
