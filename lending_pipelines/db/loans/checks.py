"""The queries behind the loans asset checks: poll success, partners failing, the last new
loan, disbursement outcomes, stuck disbursements."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .tables import (
    T,
    disbursement_requests,
    loan_tracking,
    poll_attempts,
)


def poll_counts(conn: Connection, since: datetime) -> tuple[int, int]:
    """(successful, failed) finished poll attempts since `since`."""
    row = conn.execute(
        sa.select(
            sa.func.count().filter(poll_attempts.c.ok.is_(True)),
            sa.func.count().filter(poll_attempts.c.ok.is_(False)),
        ).where(poll_attempts.c.started_at >= since, poll_attempts.c.finished_at.is_not(None))
    ).one()
    return int(row[0]), int(row[1])


def partners_failing_since(conn: Connection, cutoff: datetime) -> list[sa.Row]:
    """Partners still being polled whose polls have all failed since before `cutoff`:
    (partner_id, failing_since, failed_polls, last_error)."""
    return list(
        conn.execute(
            sa.text(
                f"""
                WITH last_ok AS (
                    SELECT partner_id, max(started_at) AS at FROM {T}poll_attempts
                    WHERE ok GROUP BY partner_id
                ), streak AS (
                    SELECT a.partner_id, min(a.started_at) AS failing_since, count(*) AS failed,
                           (array_agg(a.error ORDER BY a.started_at DESC))[1] AS last_error,
                           max(a.started_at) AS last_attempt
                    FROM {T}poll_attempts a LEFT JOIN last_ok o ON o.partner_id = a.partner_id
                    WHERE a.ok IS FALSE AND a.started_at > COALESCE(o.at, '-infinity')
                    GROUP BY a.partner_id
                )
                SELECT partner_id, failing_since, failed AS failed_polls, last_error FROM streak
                WHERE failing_since <= :cutoff AND last_attempt > :cutoff
                ORDER BY partner_id
                """
            ),
            {"cutoff": cutoff},
        )
    )


def last_new_loan_at(conn: Connection) -> datetime | None:
    return conn.execute(sa.select(sa.func.max(loan_tracking.c.first_seen_at))).scalar()


def disbursement_outcomes(conn: Connection, since: datetime) -> tuple[int, int]:
    """(succeeded, failed for good) requests resolved since `since`; retryable failures are
    still in play and do not count yet."""
    row = conn.execute(
        sa.select(
            sa.func.count().filter(disbursement_requests.c.status == "succeeded"),
            sa.func.count().filter(
                disbursement_requests.c.status == "failed",
                sa.not_(disbursement_requests.c.retryable),
            ),
        ).where(disbursement_requests.c.resolved_at >= since)
    ).one()
    return int(row[0]), int(row[1])


def stuck_disbursements(conn: Connection, cutoff: datetime) -> list[sa.Row]:
    """Requests without a final outcome since before `cutoff`, and paid ones Fineract has not
    recorded since then."""
    d = disbursement_requests
    return list(
        conn.execute(
            sa.select(d.c.id, d.c.partner_id, d.c.fineract_loan_id, d.c.status, d.c.created_at)
            .where(
                d.c.created_at <= cutoff,
                sa.or_(
                    d.c.status.in_(("pending", "submitted", "unknown")),
                    sa.and_(d.c.status == "succeeded", d.c.fineract_recorded_at.is_(None)),
                ),
            )
            .order_by(d.c.id)
        )
    )
