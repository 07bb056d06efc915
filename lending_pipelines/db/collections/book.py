"""Escalation to legal and collector scores, set-based over the book."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain.collections import ESCALATION_DPD
from ..audit import record_audits
from .dpd import DPD_AS_OF
from .guard import as_writer


@dataclass(frozen=True)
class Escalated:
    loan_id: int
    dpd: int
    business_date: date


def escalate_to_legal(
    conn: Connection, *, actor: str, run_id: str | None, reason: str
) -> list[Escalated]:
    """ACTIVE loans at DPD >= 90 on their latest computed day: an escalation record (unique per
    loan, so once ever), status LEGAL and an audit entry each, in the caller's transaction.
    Closed and written-off loans are never escalated."""
    as_writer(conn, "escalation")
    rows = conn.execute(
        sa.text(
            """
            WITH latest AS (
                SELECT max(business_date) AS business_date FROM lending.dpd_days
            ), due AS (
                SELECT l.id, l.dpd, latest.business_date, l.status
                FROM lending.collection_loans l, latest
                WHERE l.status = 'ACTIVE' AND l.dpd >= :threshold
                  AND latest.business_date IS NOT NULL
                FOR UPDATE OF l
            ), recorded AS (
                INSERT INTO lending.legal_escalations
                    (loan_id, business_date, dpd, previous_status, actor, run_id)
                SELECT id, business_date, dpd, status, :actor, :run_id FROM due
                ON CONFLICT (loan_id) DO NOTHING
                RETURNING loan_id, dpd, business_date
            )
            UPDATE lending.collection_loans l SET status = 'LEGAL', updated_at = now()
            FROM recorded r WHERE l.id = r.loan_id
            RETURNING r.loan_id, r.dpd, r.business_date
            """
        ),
        {"threshold": ESCALATION_DPD, "actor": actor, "run_id": run_id},
    )
    escalated = sorted((Escalated(*row) for row in rows.all()), key=lambda e: e.loan_id)
    record_audits(
        conn,
        [
            {
                "actor": actor,
                "action": "collections.escalate_to_legal",
                "entity": "collection_loan",
                "entity_id": e.loan_id,
                "old_value": {"status": "ACTIVE", "dpd": e.dpd},
                "new_value": {"status": "LEGAL", "business_date": e.business_date},
                "reason": reason,
                "run_id": run_id,
            }
            for e in escalated
        ],
    )
    return escalated


def compute_scores(conn: Connection, day: date) -> list[dict]:
    """Per collector and bucket on `day`: loans assigned (bucket at the start of the day), what
    stays overdue at its end, and what was collected (payments dated that day). Replaces the
    day's rows."""
    conn.execute(
        sa.text("DELETE FROM lending.collector_scores WHERE business_date = :day"), {"day": day}
    )
    rows = conn.execute(
        sa.text(
            f"""
            WITH book AS ({DPD_AS_OF}),
            collected AS (
                SELECT loan_id, sum(amount_minor) AS amount FROM lending.payments
                WHERE paid_on = :day GROUP BY loan_id
            )
            INSERT INTO lending.collector_scores
                (business_date, collector_id, bucket, assigned_loans, overdue_minor,
                 collected_minor)
            SELECT :day, b.collector_id, coalesce(sb.bucket, 'current'), count(*),
                   sum(b.overdue_minor), coalesce(sum(c.amount), 0)
            FROM book b
            LEFT JOIN LATERAL (
                SELECT ch.bucket FROM lending.dpd_bucket_changes ch
                WHERE ch.loan_id = b.loan_id AND ch.business_date < :day
                ORDER BY ch.business_date DESC LIMIT 1
            ) sb ON true
            LEFT JOIN collected c ON c.loan_id = b.loan_id
            WHERE b.collector_id IS NOT NULL
            GROUP BY b.collector_id, coalesce(sb.bucket, 'current')
            RETURNING collector_id, bucket, assigned_loans, overdue_minor, collected_minor
            """
        ),
        {"day": day},
    ).mappings()
    return sorted((dict(r) for r in rows.all()), key=lambda r: (r["collector_id"], r["bucket"]))
