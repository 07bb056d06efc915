"""The Launchpad operations on credit, each in the caller's transaction with its audit entry.

Lock order, shared with the guardrails: the retailer row first (`FOR UPDATE`), then its credit
transactions. A payment recorded while guardrails run therefore either commits before the
guardrails lock the retailer (and they see the lower outstanding) or waits until they commit
(and the payment applies to a paused retailer): outstanding, status and audit always agree.

Bad input raises `CreditOperationError` naming the field and the value, before anything is
written; the caller's transaction is rolled back with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain.credit_money import format_amount
from ..audit import record_audit
from .exposure import UNPAID_CHARGE


class CreditOperationError(ValueError):
    """A Launchpad operation refused: the message names the field and the value."""


@dataclass(frozen=True)
class Operator:
    actor: str
    reason: str
    run_id: str | None


def _positive(field: str, amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise CreditOperationError(
            f"{field} is {amount!r}, expected a positive whole number of minor units"
        )


def lock_retailer(conn: Connection, retailer_id: str) -> dict:
    row = (
        conn.execute(
            sa.text(
                "SELECT r.id, r.credit_status, r.credit_paused_at, r.credit_pause_reason, "
                "a.currency, a.credit_limit, a.max_order_value, a.max_outstanding_days "
                "FROM lending.retailers r JOIN lending.credit_accounts a ON a.retailer_id = r.id "
                "WHERE r.id = :id FOR UPDATE OF r, a"
            ),
            {"id": retailer_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise CreditOperationError(
            f"retailer_id {retailer_id!r} is not a retailer with a credit account"
        )
    return dict(row)


def outstanding(conn: Connection, retailer_id: str) -> int:
    return conn.execute(
        sa.text(
            "SELECT coalesce(sum(t.amount - t.cleared_amount), 0)::bigint "
            f"FROM lending.credit_transactions t WHERE t.retailer_id = :id AND {UNPAID_CHARGE}"
        ),
        {"id": retailer_id},
    ).scalar_one()


def set_credit_status(
    conn: Connection, retailer_id: str, *, status: str, operator: Operator, dry_run: bool = False
) -> dict[str, Any]:
    """Pause (ACTIVE → PAUSED) or unpause (PAUSED → ACTIVE) one retailer's credit."""
    allowed = {"PAUSED": "ACTIVE", "ACTIVE": "PAUSED"}
    if status not in allowed:
        raise CreditOperationError(f"status is {status!r}, expected 'PAUSED' or 'ACTIVE'")
    retailer = lock_retailer(conn, retailer_id)
    if retailer["credit_status"] != allowed[status]:
        raise CreditOperationError(
            f"retailer_id {retailer_id!r}: credit_status is {retailer['credit_status']!r}, "
            f"expected {allowed[status]!r} to set it {status}"
        )
    old = {
        "credit_status": retailer["credit_status"],
        "credit_pause_reason": retailer["credit_pause_reason"],
    }
    new = {
        "credit_status": status,
        "credit_pause_reason": operator.reason if status == "PAUSED" else None,
    }
    if dry_run:
        return {"old": old, "new": new, "dry_run": True}
    conn.execute(
        sa.text(
            "UPDATE lending.retailers SET credit_status = :status, updated_at = now(), "
            "credit_paused_at = CASE WHEN :status = 'PAUSED' THEN now() END, "
            "credit_pause_reason = :reason WHERE id = :id"
        ),
        {"status": status, "reason": new["credit_pause_reason"], "id": retailer_id},
    )
    record_audit(
        conn,
        actor=operator.actor,
        action="credit.pause" if status == "PAUSED" else "credit.unpause",
        entity="retailer",
        entity_id=retailer_id,
        old_value=old,
        new_value=new,
        reason=operator.reason,
        run_id=operator.run_id,
    )
    return {"old": old, "new": new, "dry_run": False}


def record_payment(
    conn: Connection,
    *,
    credit_transaction_id: int,
    amount: int,
    currency: str,
    operator: Operator,
    dry_run: bool = False,
) -> dict[str, Any]:
    """A payment against one debit: partial or full, never more than what is still owed."""
    _positive("amount", amount)
    retailer_id = conn.execute(
        sa.text("SELECT retailer_id FROM lending.credit_transactions WHERE id = :id"),
        {"id": credit_transaction_id},
    ).scalar_one_or_none()
    if retailer_id is None:
        raise CreditOperationError(
            f"credit_transaction_id {credit_transaction_id!r} is not a credit transaction"
        )
    lock_retailer(conn, retailer_id)
    debit = (
        conn.execute(
            sa.text(
                "SELECT id, type, amount, cleared_amount, currency, status "
                "FROM lending.credit_transactions WHERE id = :id FOR UPDATE"
            ),
            {"id": credit_transaction_id},
        )
        .mappings()
        .one()
    )
    if debit["type"] == "CREDIT" or debit["amount"] < 0:
        raise CreditOperationError(
            f"credit_transaction_id {credit_transaction_id}: is a {debit['type']} of "
            f"{debit['amount']}, payments go against a debit"
        )
    if debit["status"] not in ("OPEN", "PARTIAL"):
        raise CreditOperationError(
            f"credit_transaction_id {credit_transaction_id}: status is {debit['status']!r}, "
            "a payment needs an OPEN or PARTIAL debit"
        )
    if currency != debit["currency"]:
        raise CreditOperationError(
            f"currency is {currency!r}, credit transaction {credit_transaction_id} is in "
            f"{debit['currency']}"
        )
    owed = debit["amount"] - debit["cleared_amount"]
    if amount > owed:
        raise CreditOperationError(
            f"amount is {amount} ({format_amount(amount, currency)}), more than the "
            f"{format_amount(owed, currency)} still owed on credit transaction "
            f"{credit_transaction_id}: overpayments are refused"
        )
    before = outstanding(conn, retailer_id)
    cleared = debit["cleared_amount"] + amount
    status = "CLEARED" if cleared == debit["amount"] else "PARTIAL"
    old = {
        "status": debit["status"],
        "cleared_amount": debit["cleared_amount"],
        "outstanding": before,
    }
    new = {"status": status, "cleared_amount": cleared, "outstanding": before - amount}
    if dry_run:
        return {"old": old, "new": new, "dry_run": True}
    conn.execute(
        sa.text(
            "UPDATE lending.credit_transactions SET cleared_amount = :cleared, status = :status, "
            "cleared_at = CASE WHEN :status = 'CLEARED' THEN now() ELSE cleared_at END "
            "WHERE id = :id"
        ),
        {"cleared": cleared, "status": status, "id": credit_transaction_id},
    )
    payment_id = conn.execute(
        sa.text(
            "INSERT INTO lending.credit_transactions (retailer_id, type, amount, currency, "
            "status, cleared_at, notes, applies_to) VALUES (:retailer, 'CREDIT', :amount, "
            ":currency, 'CLEARED', now(), :notes, :applies_to) RETURNING id"
        ),
        {
            "retailer": retailer_id,
            "amount": amount,
            "currency": currency,
            "notes": f"payment: {operator.reason}",
            "applies_to": credit_transaction_id,
        },
    ).scalar_one()
    record_audit(
        conn,
        actor=operator.actor,
        action="credit.payment",
        entity="credit_transaction",
        entity_id=credit_transaction_id,
        old_value=old,
        new_value={**new, "payment_transaction_id": payment_id, "amount": amount},
        reason=operator.reason,
        run_id=operator.run_id,
    )
    return {"old": old, "new": new, "payment_transaction_id": payment_id, "dry_run": False}


def adjust(
    conn: Connection,
    *,
    retailer_id: str,
    direction: str,
    amount: int,
    currency: str,
    due_date: date | None,
    operator: Operator,
    dry_run: bool = False,
) -> dict[str, Any]:
    """A debit adjustment (a new charge due on `due_date`) or a credit adjustment (settles the
    retailer's unpaid charges oldest due first; never more than the outstanding)."""
    _positive("amount", amount)
    if direction not in ("DEBIT", "CREDIT"):
        raise CreditOperationError(f"direction is {direction!r}, expected 'DEBIT' or 'CREDIT'")
    retailer = lock_retailer(conn, retailer_id)
    if currency != retailer["currency"]:
        raise CreditOperationError(
            f"currency is {currency!r}, retailer {retailer_id}'s credit is in "
            f"{retailer['currency']}"
        )
    before = outstanding(conn, retailer_id)
    if direction == "DEBIT" and due_date is None:
        raise CreditOperationError("due_date is missing: a debit adjustment needs its due date")
    if direction == "CREDIT" and amount > before:
        raise CreditOperationError(
            f"amount is {amount} ({format_amount(amount, currency)}), more than retailer "
            f"{retailer_id}'s outstanding {format_amount(before, currency)}"
        )
    after = before + amount if direction == "DEBIT" else before - amount
    old, new = {"outstanding": before}, {"outstanding": after, "direction": direction}
    if dry_run:
        return {"old": old, "new": new, "dry_run": True}
    signed = amount if direction == "DEBIT" else -amount
    adjustment_id = conn.execute(
        sa.text(
            "INSERT INTO lending.credit_transactions (retailer_id, type, amount, currency, "
            "due_date, status, cleared_at, notes) VALUES (:retailer, 'ADJUSTMENT', :amount, "
            ":currency, :due, :status, CASE WHEN :status = 'CLEARED' THEN now() END, :notes) "
            "RETURNING id"
        ),
        {
            "retailer": retailer_id,
            "amount": signed,
            "currency": currency,
            "due": due_date if direction == "DEBIT" else None,
            "status": "OPEN" if direction == "DEBIT" else "CLEARED",
            "notes": f"{direction.lower()} adjustment: {operator.reason}",
        },
    ).scalar_one()
    settled: list[int] = []
    if direction == "CREDIT":
        conn.execute(
            sa.text(
                "SELECT t.id FROM lending.credit_transactions t "
                f"WHERE t.retailer_id = :retailer AND {UNPAID_CHARGE} ORDER BY t.id FOR UPDATE"
            ),
            {"retailer": retailer_id},
        )
        settled = list(
            conn.execute(
                sa.text(
                    f"""
                    WITH queue AS (
                        SELECT t.id, t.amount - t.cleared_amount AS owed,
                               sum(t.amount - t.cleared_amount) OVER (
                                   ORDER BY t.due_date, t.id) AS running
                        FROM lending.credit_transactions t
                        WHERE t.retailer_id = :retailer AND {UNPAID_CHARGE}
                    ), applied AS (
                        SELECT id, least(owed, :amount - (running - owed)) AS part
                        FROM queue WHERE running - owed < :amount
                    )
                    UPDATE lending.credit_transactions t
                    SET cleared_amount = t.cleared_amount + a.part,
                        status = CASE WHEN t.cleared_amount + a.part = t.amount
                                      THEN 'CLEARED' ELSE 'PARTIAL' END,
                        cleared_at = CASE WHEN t.cleared_amount + a.part = t.amount
                                          THEN now() ELSE t.cleared_at END
                    FROM applied a WHERE t.id = a.id
                    RETURNING t.id
                    """
                ),
                {"retailer": retailer_id, "amount": amount},
            ).scalars()
        )
    record_audit(
        conn,
        actor=operator.actor,
        action=f"credit.{direction.lower()}_adjustment",
        entity="retailer",
        entity_id=retailer_id,
        old_value=old,
        new_value={
            **new,
            "adjustment_transaction_id": adjustment_id,
            "amount": amount,
            "settled_transactions": sorted(settled),
        },
        reason=operator.reason,
        run_id=operator.run_id,
    )
    return {"old": old, "new": new, "adjustment_transaction_id": adjustment_id, "dry_run": False}


def change_guardrails(
    conn: Connection,
    *,
    retailer_id: str,
    max_order_value: int | None,
    max_outstanding_days: int | None,
    operator: Operator,
) -> dict[str, Any]:
    if max_order_value is None and max_outstanding_days is None:
        raise CreditOperationError(
            "max_order_value and max_outstanding_days are both missing: nothing to change"
        )
    if max_order_value is not None and (isinstance(max_order_value, bool) or max_order_value < 0):
        raise CreditOperationError(f"max_order_value is {max_order_value!r}, expected >= 0")
    if max_outstanding_days is not None and max_outstanding_days < 0:
        raise CreditOperationError(
            f"max_outstanding_days is {max_outstanding_days!r}, expected >= 0"
        )
    retailer = lock_retailer(conn, retailer_id)
    old = {
        "max_order_value": retailer["max_order_value"],
        "max_outstanding_days": retailer["max_outstanding_days"],
    }
    new = {
        "max_order_value": old["max_order_value"] if max_order_value is None else max_order_value,
        "max_outstanding_days": old["max_outstanding_days"]
        if max_outstanding_days is None
        else max_outstanding_days,
    }
    conn.execute(
        sa.text(
            "UPDATE lending.credit_accounts SET max_order_value = :max_order_value, "
            "max_outstanding_days = :max_outstanding_days, updated_at = now() "
            "WHERE retailer_id = :id"
        ),
        {**new, "id": retailer_id},
    )
    record_audit(
        conn,
        actor=operator.actor,
        action="credit.guardrails_change",
        entity="credit_account",
        entity_id=retailer_id,
        old_value=old,
        new_value=new,
        reason=operator.reason,
        run_id=operator.run_id,
    )
    return {"old": old, "new": new}
