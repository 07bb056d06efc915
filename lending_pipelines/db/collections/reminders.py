"""Borrower reminders: who is due one now, and the record of each sent (one per loan per local
day, the primary key; the WhatsApp outbox holds the message under the same day's key)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Candidate:
    loan_id: int
    phone: str
    bucket: str
    dpd: int
    local_date: date

    @property
    def idempotency_key(self) -> str:
        return f"collections-reminder:{self.loan_id}:{self.local_date.isoformat()}"


def reminder_candidates(
    conn: Connection, *, now: datetime, start_hour: int, end_hour: int
) -> tuple[list[Candidate], int]:
    """ACTIVE delinquent loans whose borrower's local time is within [start, end) hours and who
    had no reminder on their local date; and how many delinquent loans are outside the hours."""
    rows = conn.execute(
        sa.text(
            """
            WITH book AS (
                SELECT l.id, l.phone, l.bucket, l.dpd,
                       (CAST(:now AS timestamptz) AT TIME ZONE l.borrower_timezone) AS local_time
                FROM lending.collection_loans l
                WHERE l.status = 'ACTIVE' AND l.bucket <> 'current'
            )
            SELECT b.id, b.phone, b.bucket, b.dpd, CAST(b.local_time AS date) AS local_date,
                   extract(hour FROM b.local_time) >= :start
                   AND extract(hour FROM b.local_time) < :end AS in_hours
            FROM book b
            WHERE NOT EXISTS (
                SELECT 1 FROM lending.collection_reminders r
                WHERE r.loan_id = b.id AND r.business_date = CAST(b.local_time AS date)
            )
            ORDER BY b.id
            """
        ),
        {"now": now, "start": start_hour, "end": end_hour},
    ).all()
    due = [Candidate(r.id, r.phone, r.bucket, r.dpd, r.local_date) for r in rows if r.in_hours]
    return due, sum(1 for r in rows if not r.in_hours)


def record_reminder(conn: Connection, candidate: Candidate) -> None:
    conn.execute(
        sa.text(
            """
            INSERT INTO lending.collection_reminders (loan_id, business_date, bucket,
                                                      idempotency_key)
            VALUES (:loan, :day, :bucket, :key) ON CONFLICT DO NOTHING
            """
        ),
        {"loan": candidate.loan_id, "day": candidate.local_date, "bucket": candidate.bucket,
         "key": candidate.idempotency_key},
    )  # fmt: skip
