"""Launchpad operations on the loan book, each with its audit entry in the caller's transaction:
reassign a collector, close a loan, release a quarantined payment row."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..audit import record_audit
from .guard import as_writer
from .tables import collection_loans, collectors, payment_files, payment_rejections


class OperationRefused(ValueError):
    """The operation cannot be done as asked; the message names the field and value."""


def _loan(conn: Connection, loan_id: int) -> dict:
    row = conn.execute(
        sa.select(collection_loans).where(collection_loans.c.id == loan_id).with_for_update()
    ).mappings().first()  # fmt: skip
    if row is None:
        raise OperationRefused(f"loan_id {loan_id}: no such loan")
    return dict(row)


def reassign_collector(
    conn: Connection, *, loan_id: int, collector_id: str, actor: str, reason: str, run_id: str
) -> dict:
    loan = _loan(conn, loan_id)
    active = conn.execute(
        sa.select(collectors.c.active).where(collectors.c.id == collector_id)
    ).scalar_one_or_none()
    if not active:
        raise OperationRefused(f"collector_id {collector_id!r}: no such active collector")
    conn.execute(
        sa.update(collection_loans)
        .where(collection_loans.c.id == loan_id)
        .values(collector_id=collector_id, updated_at=sa.func.now())
    )
    change = {"before": {"collector_id": loan["collector_id"]},
              "after": {"collector_id": collector_id}}  # fmt: skip
    record_audit(
        conn, actor=actor, action="collections.reassign_collector", entity="collection_loan",
        entity_id=loan_id, old_value=change["before"], new_value=change["after"], reason=reason,
        run_id=run_id,
    )  # fmt: skip
    return change


def close_loan(conn: Connection, *, loan_id: int, actor: str, reason: str, run_id: str) -> dict:
    """ACTIVE or LEGAL → CLOSED, only when nothing is outstanding (a write-off is not a close)."""
    loan = _loan(conn, loan_id)
    if loan["status"] not in ("ACTIVE", "LEGAL"):
        raise OperationRefused(f"loan_id {loan_id}: status is {loan['status']}, not ACTIVE/LEGAL")
    outstanding = conn.execute(
        sa.text(
            "SELECT coalesce(sum(amount_due_minor - amount_paid_minor), 0) "
            "FROM lending.installments WHERE loan_id = :id"
        ),
        {"id": loan_id},
    ).scalar_one()
    if outstanding:
        raise OperationRefused(
            f"loan_id {loan_id}: {outstanding} paise still outstanding; only a paid-off loan closes"
        )
    as_writer(conn, "close")
    conn.execute(
        sa.update(collection_loans)
        .where(collection_loans.c.id == loan_id)
        .values(status="CLOSED", updated_at=sa.func.now())
    )
    change = {"before": {"status": loan["status"]}, "after": {"status": "CLOSED"}}
    record_audit(
        conn, actor=actor, action="collections.close_loan", entity="collection_loan",
        entity_id=loan_id, old_value=change["before"], new_value=change["after"], reason=reason,
        run_id=run_id,
    )  # fmt: skip
    return change


def quarantined_row(conn: Connection, rejection_id: int) -> dict:
    """A quarantined row (locked) with the day its file was received (None: a manual entry)."""
    row = conn.execute(
        sa.select(payment_rejections, payment_files.c.received_at)
        .select_from(payment_rejections.outerjoin(payment_files))
        .where(payment_rejections.c.id == rejection_id)
        .with_for_update(of=payment_rejections)
    ).mappings().first()  # fmt: skip
    if row is None:
        raise OperationRefused(f"rejection_id {rejection_id}: no such quarantined row")
    if row["status"] != "quarantined":
        raise OperationRefused(
            f"rejection_id {rejection_id}: already released as payment {row['released_payment_id']}"
        )
    if row["row_number"] == 0:
        raise OperationRefused(
            f"rejection_id {rejection_id}: the whole file was rejected ({row['reason_code']}); "
            "correct the file and drop it into the inbox again"
        )
    return dict(row)


def mark_released(conn: Connection, rejection_id: int, payment_id: int) -> None:
    conn.execute(
        sa.update(payment_rejections)
        .where(payment_rejections.c.id == rejection_id)
        .values(status="released", released_payment_id=payment_id)
    )
