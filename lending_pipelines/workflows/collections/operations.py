"""Launchpad operations, each in one transaction with its audit entry (before, after, actor,
reason, run id). A manual payment and a release from quarantine go through the same row
validation as a file and the same posting (allocation oldest first); a rejected manual payment
is quarantined (committed) and reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...db.audit import record_audit
from ...db.collections import operations as ops_db
from ...db.collections import payments as payments_db
from ...db.collections.tables import payments
from ...domain.collections_payments import Bounds, RejectedRow, validate_rows

OperationRefused = ops_db.OperationRefused


@dataclass(frozen=True)
class PaymentOutcome:
    payment_id: int | None
    rejected: RejectedRow | None
    overpaid_minor: int = 0


def _validate_and_post(
    conn: Connection, raw: dict[str, str], *, received_on: date, bounds: Bounds, source: str,
    actor: str, run_id: str,
) -> PaymentOutcome:  # fmt: skip
    payments_db.lock_posting(conn)
    loan_id = raw.get("loan_id", "").strip()
    validation = validate_rows(
        [raw],
        received_on=received_on,
        loan_statuses=payments_db.known_loans(
            conn, [int(loan_id)] if loan_id.isdigit() and len(loan_id) <= 18 else []
        ),
        recorded_utrs=payments_db.recorded_utrs(conn, [raw.get("utr", "").strip().upper()]),
        bounds=bounds,
    )
    if validation.rejected:
        return PaymentOutcome(None, validation.rejected[0])
    posted = payments_db.post_payments(
        conn, validation.accepted, source=source, posted_by=actor, run_id=run_id
    )
    (row,) = validation.accepted
    payment_id = conn.execute(
        sa.select(payments.c.id).where(payments.c.utr == row.utr)
    ).scalar_one()
    return PaymentOutcome(payment_id, None, posted.overpaid_minor)


def record_manual_payment(
    engine: sa.Engine, raw: dict[str, str], *, timezone: str, bounds: Bounds, actor: str,
    reason: str, run_id: str,
) -> PaymentOutcome:  # fmt: skip
    today = datetime.now(ZoneInfo(timezone)).date()
    with engine.begin() as conn:
        outcome = _validate_and_post(
            conn, raw, received_on=today, bounds=bounds, source="manual", actor=actor,
            run_id=run_id,
        )  # fmt: skip
        if outcome.rejected is not None:
            payments_db.quarantine(conn, [outcome.rejected], file_id=None)
        record_audit(
            conn, actor=actor, action="collections.manual_payment", entity="payment",
            entity_id=outcome.payment_id or f"rejected:{raw.get('utr', '')}", old_value=None,
            new_value={**raw, "payment_id": outcome.payment_id,
                       "rejected": outcome.rejected.reason_code if outcome.rejected else None},
            reason=reason, run_id=run_id,
        )  # fmt: skip
    return outcome


def release_from_quarantine(
    engine: sa.Engine, rejection_id: int, corrections: dict[str, str], *, timezone: str,
    bounds: Bounds, actor: str, reason: str, run_id: str,
) -> PaymentOutcome:  # fmt: skip
    """Post a quarantined row after correcting some of its values. Backdating and the future are
    judged against the day its file was received (not the day of the release)."""
    with engine.begin() as conn:
        row = ops_db.quarantined_row(conn, rejection_id)
        raw = {k: str(v) for k, v in row["raw"].items() if k != "_columns"}
        corrected = {**raw, **{k: v for k, v in corrections.items() if v}}
        received = row["received_at"] or row["created_at"]
        outcome = _validate_and_post(
            conn, corrected, received_on=received.astimezone(ZoneInfo(timezone)).date(),
            bounds=bounds, source="quarantine_release", actor=actor, run_id=run_id,
        )  # fmt: skip
        if outcome.rejected is not None:
            raise OperationRefused(
                f"rejection_id {rejection_id}: still rejected after correction: "
                f"{outcome.rejected.reason_code}, field {outcome.rejected.field!r} is "
                f"{outcome.rejected.value!r}"
            )
        ops_db.mark_released(conn, rejection_id, outcome.payment_id)
        record_audit(
            conn, actor=actor, action="collections.release_from_quarantine",
            entity="payment_rejection", entity_id=rejection_id,
            old_value={"status": "quarantined", "raw": raw, "reason_code": row["reason_code"]},
            new_value={"status": "released", "raw": corrected, "payment_id": outcome.payment_id},
            reason=reason, run_id=run_id,
        )  # fmt: skip
    return outcome
