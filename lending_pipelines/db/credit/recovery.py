"""Order recovery in the database: pending orders expiring, follow-ups once per expired order,
and failed CREDIT orders whose debit is reversed exactly once.

Expiry is one UPDATE (PENDING and older than the expiry → EXPIRED); re-running it changes
nothing. Follow-ups and reversals lock their rows `FOR UPDATE SKIP LOCKED` (a row another run
holds is that run's) and record the change and the outbox row in one statement. A reversal is
a CREDIT transaction whose `reversal_of` (unique) names the debit, inserted `ON CONFLICT DO
NOTHING`; the debit becomes REVERSED and the audit entry is written in the same statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .messages import INTENTS_CTE, QUEUE_INTENTS


def expire_pending_orders(conn: Connection, *, expiry_hours: int) -> list[dict]:
    rows = conn.execute(
        sa.text(
            "UPDATE lending.pending_orders SET status = 'EXPIRED', expired_at = now() "
            "WHERE status = 'PENDING' AND created_at <= now() - make_interval(hours => :hours) "
            "RETURNING id AS pending_order_id, retailer_id, amount, currency, created_at"
        ),
        {"hours": expiry_hours},
    ).mappings()
    return sorted((dict(r) for r in rows), key=lambda r: r["pending_order_id"])


def pending_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.text("SELECT status, count(*) FROM lending.pending_orders GROUP BY status")
    ).all()
    return {status: count for status, count in rows}


@dataclass(frozen=True)
class FollowUp:
    pending_order_id: int
    retailer_name: str
    whatsapp_number: str
    amount: int
    currency: str
    expired_at: datetime


def claim_follow_ups(conn: Connection, *, lookback_hours: int) -> list[FollowUp]:
    rows = conn.execute(
        sa.text(
            """
            SELECT p.id AS pending_order_id, r.name AS retailer_name, r.whatsapp_number,
                   p.amount, p.currency, p.expired_at
            FROM lending.pending_orders p JOIN lending.retailers r ON r.id = p.retailer_id
            WHERE p.status = 'EXPIRED' AND p.follow_up_sent_at IS NULL
              AND p.expired_at >= now() - make_interval(hours => :hours)
            ORDER BY p.id
            FOR UPDATE OF p SKIP LOCKED
            """
        ),
        {"hours": lookback_hours},
    ).mappings()
    return [FollowUp(**row) for row in rows]


RECORD_FOLLOW_UPS_SQL = f"""
WITH {INTENTS_CTE}, changed AS (
    UPDATE lending.pending_orders p SET follow_up_sent_at = now()
    FROM intents i
    WHERE p.id = CAST(i.entity_id AS bigint) AND p.follow_up_sent_at IS NULL
    RETURNING CAST(p.id AS text) AS entity_id
), queued AS (
    {QUEUE_INTENTS}
)
SELECT (SELECT count(*) FROM changed) AS changed, (SELECT count(*) FROM queued) AS queued
"""


def record_follow_ups(conn: Connection, intents: list[dict]) -> int:
    if not intents:
        return 0
    row = conn.execute(sa.text(RECORD_FOLLOW_UPS_SQL), {"intents": json.dumps(intents)}).one()
    return row.queued


# Debits of FAILED CREDIT orders not reversed yet.
UNREVERSED_SQL = """
FROM lending.orders o
JOIN lending.credit_transactions t ON t.order_id = o.id AND t.type = 'DEBIT'
WHERE o.status = 'FAILED' AND o.payment_mode = 'CREDIT' AND t.status <> 'REVERSED'
  AND NOT EXISTS (SELECT 1 FROM lending.credit_transactions c WHERE c.reversal_of = t.id)
"""


def unreversed_failed_debits(conn: Connection) -> tuple[int, int | None]:
    """(how many, the highest debit id): what the failed-orders sensor watches."""
    row = conn.execute(sa.text(f"SELECT count(*), max(t.id) {UNREVERSED_SQL}")).one()
    return row[0], row[1]


@dataclass(frozen=True)
class Reversal:
    debit_id: int
    order_id: int
    retailer_id: str
    retailer_name: str
    whatsapp_number: str
    amount: int
    cleared_amount: int
    currency: str
    status: str


CLAIM_REVERSALS_SQL = (
    "SELECT t.id AS debit_id, o.id AS order_id, t.retailer_id, r.name AS retailer_name, "
    "r.whatsapp_number, t.amount, t.cleared_amount, t.currency, t.status "
    + UNREVERSED_SQL.replace("WHERE", "JOIN lending.retailers r ON r.id = t.retailer_id\nWHERE", 1)
    + " ORDER BY t.id FOR UPDATE OF t SKIP LOCKED"
)


def claim_reversals(conn: Connection) -> list[Reversal]:
    return [Reversal(**row) for row in conn.execute(sa.text(CLAIM_REVERSALS_SQL)).mappings()]


RECORD_REVERSALS_SQL = f"""
WITH {INTENTS_CTE}, todo AS (
    SELECT t.* FROM lending.credit_transactions t
    JOIN intents i ON t.id = CAST(i.entity_id AS bigint)
    WHERE t.status <> 'REVERSED'
), inserted AS (
    INSERT INTO lending.credit_transactions
        (retailer_id, order_id, type, amount, currency, status, cleared_at, notes,
         applies_to, reversal_of)
    SELECT retailer_id, order_id, 'CREDIT', amount, currency, 'CLEARED', now(),
           'reversal of debit ' || id || ': order ' || order_id || ' failed', id, id
    FROM todo
    ON CONFLICT (reversal_of) DO NOTHING
    RETURNING reversal_of
), reversed AS (
    UPDATE lending.credit_transactions t SET status = 'REVERSED'
    FROM inserted WHERE t.id = inserted.reversal_of
    RETURNING t.id, t.amount, t.cleared_amount, t.order_id
), audited AS (
    INSERT INTO lending.audit_log (actor, action, entity, entity_id, old_value, new_value,
                                   reason, run_id)
    SELECT :actor, 'credit.order_failed_reversal', 'credit_transaction', CAST(r.id AS text),
           jsonb_build_object('status', todo.status, 'cleared_amount', todo.cleared_amount),
           jsonb_build_object('status', 'REVERSED', 'reversal_amount', r.amount,
                              'refund_due', r.cleared_amount),
           'order ' || r.order_id || ' failed: ' || coalesce(o.failure_reason, 'no reason given'),
           :run_id
    FROM reversed r JOIN todo ON todo.id = r.id JOIN lending.orders o ON o.id = r.order_id
    RETURNING entity_id
), changed AS (
    SELECT entity_id FROM audited
), queued AS (
    {QUEUE_INTENTS}
)
SELECT (SELECT count(*) FROM changed) AS reversed, (SELECT count(*) FROM queued) AS queued
"""


def record_reversals(
    conn: Connection, intents: list[dict], *, actor: str, run_id: str | None
) -> tuple[int, int]:
    """`intents`: {entity_id (the debit id), key, number, payload}. Returns (reversed, queued)."""
    if not intents:
        return 0, 0
    row = conn.execute(
        sa.text(RECORD_REVERSALS_SQL),
        {"intents": json.dumps(intents), "actor": actor, "run_id": run_id},
    ).one()
    return row.reversed, row.queued
