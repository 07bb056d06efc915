"""Disbursement requests: created once per newly tracked loan of an enabled product (unique
partner + loan + tranche), deferred, failed, re-armed, given up, recorded in Fineract. Claiming,
attempts and results live in `db/disbursement_attempts.py` and `db/disbursement_results.py`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..audit import record_audits
from .tables import (
    T,
    disbursement_requests,
    loan_tracking,
)

_MPESA_CONFIGURED = (
    "p.mpesa_consumer_key IS NOT NULL AND p.mpesa_consumer_secret_encrypted IS NOT NULL "
    "AND p.mpesa_shortcode IS NOT NULL AND p.mpesa_initiator_name IS NOT NULL "
    "AND p.mpesa_security_credential_encrypted IS NOT NULL"
)


def create_disbursement_requests(conn: Connection, run_id: str | None = None) -> list[sa.Row]:
    """One request per newly tracked approved loan whose product has auto-disbursal on and
    whose partner has M-Pesa configured; keyed by (partner, loan, tranche 1), so running it
    again creates nothing. Returns the created rows."""
    created = list(
        conn.execute(
            sa.text(
                f"""
                INSERT INTO {T}disbursement_requests
                    (partner_id, fineract_loan_id, tranche, loan_tracking_id, amount_minor,
                     currency)
                SELECT lt.partner_id, lt.fineract_loan_id, 1, lt.id,
                       round(lt.principal * 100)::bigint, lt.currency
                FROM {T}loan_tracking lt
                JOIN {T}partners p ON p.id = lt.partner_id
                JOIN {T}loan_product_auto_disbursal_configs c
                  ON c.partner_id = lt.partner_id AND c.loan_product_id = lt.loan_product_id
                WHERE lt.status_id = 200 AND lt.principal > 0 AND p.active AND c.enabled
                  AND lt.first_seen_at >= c.enabled_at AND {_MPESA_CONFIGURED}
                ORDER BY lt.id
                ON CONFLICT (partner_id, fineract_loan_id, tranche) DO NOTHING
                RETURNING id, partner_id, fineract_loan_id, amount_minor, currency
                """
            )
        )
    )
    record_audits(
        conn,
        [
            {
                "actor": "loan_disbursements",
                "action": "disbursement.requested",
                "entity": "disbursement_request",
                "entity_id": row.id,
                "new_value": {
                    "partner_id": row.partner_id,
                    "fineract_loan_id": row.fineract_loan_id,
                    "amount_minor": row.amount_minor,
                    "currency": row.currency,
                },
                "run_id": run_id,
            }
            for row in created
        ],
    )
    return created


@dataclass(frozen=True)
class OpenDisbursement:
    id: int
    partner_id: str
    fineract_loan_id: int
    tranche: int
    status: str
    amount_minor: int
    currency: str
    client_id: int | None
    phone: str | None
    attempts: int
    attempt_started_at: datetime | None
    originator_conversation_id: str | None
    charge_minor: int


_OPEN_COLUMNS = (
    "d.id, d.partner_id, d.fineract_loan_id, d.tranche, d.status, d.amount_minor, d.currency, "
    "lt.client_id, d.phone, d.attempts, d.attempt_started_at, d.originator_conversation_id, "
    "d.charge_minor"
)


def _open(rows: Iterable[sa.Row]) -> list[OpenDisbursement]:
    return [OpenDisbursement(**row._mapping) for row in rows]


def defer(conn: Connection, request_id: int, reason: str, until: datetime) -> None:
    """Nothing was sent (Fineract or Daraja unavailable): stay pending until `until`."""
    conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id == request_id, disbursement_requests.c.status == "pending"
        )
        .values(
            failure_reason=reason,
            next_attempt_at=until,
            claimed_by_pid=None,
            claimed_at=None,
            updated_at=sa.func.now(),
        )
    )


def mark_failed(
    conn: Connection,
    request_id: int,
    *,
    reason: str,
    retryable: bool,
    count_attempt: bool = False,
    phone_raw: str | None = None,
    run_id: str | None = None,
    from_statuses: tuple[str, ...] = ("pending",),
) -> None:
    """A failure known before or without an M-Pesa result (invalid phone, loan no longer
    approved, request rejected, wallet short). `count_attempt` counts it against the maximum."""
    conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id == request_id,
            disbursement_requests.c.status.in_(from_statuses),
        )
        .values(
            status="failed",
            claimed_by_pid=None,
            claimed_at=None,
            failure_reason=reason,
            retryable=retryable,
            phone_raw=sa.func.coalesce(phone_raw, disbursement_requests.c.phone_raw),
            attempts=disbursement_requests.c.attempts + (1 if count_attempt else 0),
            resolved_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )
    record_audits(
        conn,
        [
            {
                "actor": "loan_disbursements",
                "action": "disbursement.failed",
                "entity": "disbursement_request",
                "entity_id": request_id,
                "new_value": {"status": "failed", "retryable": retryable},
                "reason": reason,
                "run_id": run_id,
            }
        ],
    )
    refund_final_failures(conn)


def refund_final_failures(conn: Connection) -> int:
    """Give the reserved disbursement charge back to the partner wallet for requests that
    failed for good (one statement for all of them)."""
    return conn.execute(
        sa.text(
            f"""
            WITH due AS (
                SELECT id, charge_minor FROM {T}disbursement_requests
                WHERE status = 'failed' AND NOT retryable AND charge_minor > 0
                FOR UPDATE
            ), refunded AS (
                UPDATE {T}disbursement_requests d SET charge_minor = 0, updated_at = now()
                FROM due WHERE d.id = due.id
                RETURNING d.partner_id, due.charge_minor AS refund  -- the value before the update
            ), totals AS (
                SELECT partner_id, sum(refund) AS refund FROM refunded GROUP BY partner_id
            )
            UPDATE {T}partners p SET wallet_balance_minor = wallet_balance_minor + t.refund,
                updated_at = now()
            FROM totals t WHERE p.id = t.partner_id
            """
        )
    ).rowcount


def retryable_failures(conn: Connection) -> list[sa.Row]:
    """Failed requests that may be tried again: (id, attempts, resolved_at)."""
    return list(
        conn.execute(
            sa.select(
                disbursement_requests.c.id,
                disbursement_requests.c.attempts,
                disbursement_requests.c.resolved_at,
            )
            .where(disbursement_requests.c.status == "failed", disbursement_requests.c.retryable)
            .order_by(disbursement_requests.c.id)
        )
    )


def rearm(conn: Connection, request_ids: Sequence[int], run_id: str | None = None) -> int:
    """Start a new attempt for known-failed requests: back to pending with no attempt id, so
    the next submission mints the next OriginatorConversationID."""
    if not request_ids:
        return 0
    rows = list(
        conn.execute(
            sa.update(disbursement_requests)
            .where(
                disbursement_requests.c.id.in_(list(request_ids)),
                disbursement_requests.c.status == "failed",
                disbursement_requests.c.retryable,
            )
            .values(
                status="pending",
                attempt_started_at=None,
                originator_conversation_id=None,
                conversation_id=None,
                status_query_conversation_id=None,
                resolved_at=None,
                next_attempt_at=None,
                updated_at=sa.func.now(),
            )
            .returning(disbursement_requests.c.id, disbursement_requests.c.attempts)
        )
    )
    record_audits(
        conn,
        [
            {
                "actor": "disbursement_retry",
                "action": "disbursement.retry_scheduled",
                "entity": "disbursement_request",
                "entity_id": row.id,
                "new_value": {"status": "pending", "next_attempt": row.attempts + 1},
                "run_id": run_id,
            }
            for row in rows
        ],
    )
    return len(rows)


def give_up(conn: Connection, request_ids: Sequence[int], max_attempts: int) -> int:
    """Stop retrying requests that used every attempt (and refund their charges)."""
    if not request_ids:
        return 0
    count = conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id.in_(list(request_ids)),
            disbursement_requests.c.status == "failed",
        )
        .values(
            retryable=False,
            failure_reason=sa.func.concat(
                disbursement_requests.c.failure_reason,
                f" (stopped after {max_attempts} attempts)",
            ),
            updated_at=sa.func.now(),
        )
    ).rowcount
    refund_final_failures(conn)
    return count


def succeeded_unrecorded(conn: Connection, limit: int = 500) -> list[sa.Row]:
    """Paid disbursements not yet recorded in Fineract."""
    return list(
        conn.execute(
            sa.select(
                disbursement_requests.c.id,
                disbursement_requests.c.partner_id,
                disbursement_requests.c.fineract_loan_id,
                disbursement_requests.c.mpesa_transaction_id,
                disbursement_requests.c.amount_minor,
                disbursement_requests.c.originator_conversation_id,
            )
            .where(
                disbursement_requests.c.status == "succeeded",
                disbursement_requests.c.fineract_recorded_at.is_(None),
                disbursement_requests.c.needs_review.is_(None),
            )
            .order_by(disbursement_requests.c.id)
            .limit(limit)
        )
    )


def mark_recorded_in_fineract(
    conn: Connection, request_id: int, transaction_id: int | None, loan_tracking_status: int = 300
) -> None:
    conn.execute(
        sa.update(disbursement_requests)
        .where(disbursement_requests.c.id == request_id)
        .values(
            fineract_recorded_at=sa.func.now(),
            fineract_transaction_id=transaction_id,
            fineract_error=None,
            updated_at=sa.func.now(),
        )
    )
    conn.execute(
        sa.update(loan_tracking)
        .where(
            loan_tracking.c.id
            == sa.select(disbursement_requests.c.loan_tracking_id)
            .where(disbursement_requests.c.id == request_id)
            .scalar_subquery()
        )
        .values(status_id=loan_tracking_status, status_value="Active")
    )


def mark_fineract_error(conn: Connection, request_id: int, error: str) -> None:
    conn.execute(
        sa.update(disbursement_requests)
        .where(disbursement_requests.c.id == request_id)
        .values(fineract_error=error[:1000], updated_at=sa.func.now())
    )
