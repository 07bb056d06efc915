"""Repayments (outbox discipline): the intent committed as `pending` before the ledger post,
the outcome recorded with the debt reduction and the audit entry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ..audit import record_audit
from .tables import (
    repayments,
)


@dataclass(frozen=True)
class Repayment:
    id: int
    retailer_id: str
    business_date: date
    currency: str
    amount: int
    debt_before: int
    wallet_balance_before: int
    limited_by: str | None
    source_balance_id: str
    destination_balance_id: str
    ledger_reference: str
    ledger_transaction_id: str | None
    status: str
    recovered: bool
    error: str | None


REPAYMENT_FIELDS = [repayments.c[name] for name in Repayment.__dataclass_fields__]


def create_repayment_intents(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Commit the intents (status pending) before anything is posted; existing ones stay."""
    if not rows:
        return 0
    stmt = insert(repayments).values(list(rows)).on_conflict_do_nothing()
    return len(conn.execute(stmt.returning(repayments.c.id)).all())


def repayments_on(
    conn: Connection, business_date: date, status: str | None = None
) -> list[Repayment]:
    query = (
        sa.select(*REPAYMENT_FIELDS)
        .where(repayments.c.business_date == business_date)
        .order_by(repayments.c.retailer_id)
    )
    if status is not None:
        query = query.where(repayments.c.status == status)
    return [Repayment(**row) for row in conn.execute(query).mappings()]


def apply_repayment(
    conn: Connection,
    repayment: Repayment,
    *,
    transaction_id: str,
    ledger_amount: int,
    recovered: bool,
    actor: str,
    run_id: str | None,
    reason: str | None = None,
) -> bool:
    """Record the ledger transaction, reduce the debt by what the ledger moved (never below
    zero: an excess is recorded in the audit entry) and audit it with the operator's `reason`,
    in the caller's transaction. False when the repayment is no longer pending."""
    applied = conn.execute(
        sa.update(repayments)
        .where(repayments.c.id == repayment.id, repayments.c.status == "pending")
        .values(
            status="applied",
            amount=ledger_amount,
            ledger_transaction_id=transaction_id,
            recovered=recovered,
            error=None,
            applied_at=sa.func.now(),
        )
        .returning(repayments.c.id)
    ).first()
    if applied is None:
        return False
    key = {"retailer_id": repayment.retailer_id, "currency": repayment.currency}
    before = conn.execute(
        sa.text(
            "SELECT outstanding_amount FROM lending.retailer_debts"
            " WHERE retailer_id = :retailer_id AND currency = :currency FOR UPDATE"
        ),
        key,
    ).scalar_one()
    # Never below zero; a debt that is already negative (bad data) is left as it is.
    after = conn.execute(
        sa.text(
            """
            UPDATE lending.retailer_debts
               SET outstanding_amount = GREATEST(outstanding_amount - :amount,
                                                 LEAST(outstanding_amount, 0)),
                   updated_at = now()
             WHERE retailer_id = :retailer_id AND currency = :currency
         RETURNING outstanding_amount
            """
        ),
        {"amount": ledger_amount, **key},
    ).scalar_one()
    record_audit(
        conn,
        actor=actor,
        action="auto_deduct.repayment",
        entity="retailer",
        entity_id=repayment.retailer_id,
        old_value={"outstanding_amount": before, "currency": repayment.currency},
        new_value={
            "outstanding_amount": after,
            "deducted": ledger_amount,
            "business_date": repayment.business_date,
            "ledger_reference": repayment.ledger_reference,
            "ledger_transaction_id": transaction_id,
            "recovered_from_ledger": recovered,
            "excess_over_debt": max(ledger_amount - max(before, 0), 0),
        },
        reason=(f"{reason}: " if reason else "")
        + f"auto-deduct for {repayment.business_date} (limited by {repayment.limited_by})",
        run_id=run_id,
    )
    return True


def fail_repayment(
    conn: Connection, repayment: Repayment, *, error: str, actor: str, run_id: str | None
) -> None:
    """A final ledger refusal: the intent stays on record as failed; the debt is unchanged."""
    conn.execute(
        sa.update(repayments)
        .where(repayments.c.id == repayment.id, repayments.c.status == "pending")
        .values(status="failed", error=error)
    )
    record_audit(
        conn,
        actor=actor,
        action="auto_deduct.failed",
        entity="retailer",
        entity_id=repayment.retailer_id,
        new_value={
            "amount": repayment.amount,
            "business_date": repayment.business_date,
            "ledger_reference": repayment.ledger_reference,
        },
        reason=error,
        run_id=run_id,
    )
