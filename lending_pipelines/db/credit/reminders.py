"""Payment reminders, at most one per credit debit per local day.

`claim_due_reminders` locks the debits due within the window or overdue and not reminded yet
on the business day (`FOR UPDATE SKIP LOCKED`: a debit another run holds is that run's), and
`record_reminders` stamps reminder_sent_at / reminder_count and writes each reminder's outbox
row (`payment_reminder:<debit>:<day>`) in one statement, in the same transaction. The
"not reminded today" condition is checked again by the UPDATE itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .exposure import UNPAID_CHARGE
from .messages import INTENTS_CTE, QUEUE_INTENTS

NOT_REMINDED_ON_DAY = (
    "(t.reminder_sent_at IS NULL "
    "OR (t.reminder_sent_at AT TIME ZONE :tz)::date < CAST(:day AS date))"
)


@dataclass(frozen=True)
class DueReminder:
    transaction_id: int
    retailer_name: str
    whatsapp_number: str
    owed: int
    currency: str
    due_date: date


def claim_due_reminders(
    conn: Connection, *, business_date: date, tz: str, window_days: int
) -> list[DueReminder]:
    rows = conn.execute(
        sa.text(
            f"""
            SELECT t.id AS transaction_id, r.name AS retailer_name,
                   r.whatsapp_number, (t.amount - t.cleared_amount) AS owed, t.currency,
                   t.due_date
            FROM lending.credit_transactions t
            JOIN lending.retailers r ON r.id = t.retailer_id
            WHERE {UNPAID_CHARGE}
              AND t.due_date - CAST(:day AS date) <= :window
              AND {NOT_REMINDED_ON_DAY}
            ORDER BY t.id
            FOR UPDATE OF t SKIP LOCKED
            """
        ),
        {"day": business_date, "tz": tz, "window": window_days},
    ).mappings()
    return [DueReminder(**row) for row in rows]


RECORD_SQL = f"""
WITH {INTENTS_CTE}, changed AS (
    UPDATE lending.credit_transactions t
    SET reminder_sent_at = now(), reminder_count = t.reminder_count + 1
    FROM intents i
    WHERE t.id = CAST(i.entity_id AS bigint) AND {NOT_REMINDED_ON_DAY}
    RETURNING CAST(t.id AS text) AS entity_id
), queued AS (
    {QUEUE_INTENTS}
)
SELECT (SELECT count(*) FROM changed) AS reminded, (SELECT count(*) FROM queued) AS queued
"""


def record_reminders(
    conn: Connection, intents: list[dict], *, business_date: date, tz: str
) -> tuple[int, int]:
    """`intents`: {entity_id (the debit id), key, number, payload}. Returns (reminded, queued)."""
    if not intents:
        return 0, 0
    row = conn.execute(
        sa.text(RECORD_SQL),
        {"intents": json.dumps(intents), "day": business_date, "tz": tz},
    ).one()
    return row.reminded, row.queued
