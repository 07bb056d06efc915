"""Escrow release and auto-deduct: the locks and guards that keep runs from moving money twice.

Several runs may touch the same wallet or escrow at once: two business days of an asset
materialised together (a UI backfill runs one run per partition, concurrently, outside the
jobs' serial tags), or a day re-run while another is running. The guarantees live here, in the
database:

- an escrow is released by the run that holds its row lock (`FOR UPDATE SKIP LOCKED`) from the
  ledger post to the local record; another run skips it;
- a repayment intent is settled by the run that holds its row lock, the same way;
- a retailer has at most one pending repayment (a partial unique index, migration 0008), and a
  new intent is only created while the debt row is locked and unchanged since it was read
  (its `xmin`), so a deduction is never computed from a debt another run has since reduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..audit import record_audit
from .repayments import REPAYMENT_FIELDS, Repayment
from .tables import escrows, repayments

# Why an intent computed by this run was not created (rule outcomes, not bad data).
PENDING_REPAYMENT = "pending_repayment"
DEBT_CHANGED = "debt_changed_during_run"
ALREADY_RECORDED = "already_recorded_for_the_day"


def pending_repayments(conn: Connection) -> list[Repayment]:
    """Every pending repayment, whatever its business date, oldest first."""
    query = (
        sa.select(*REPAYMENT_FIELDS)
        .where(repayments.c.status == "pending")
        .order_by(repayments.c.business_date, repayments.c.retailer_id)
    )
    return [Repayment(**row) for row in conn.execute(query).mappings()]


def lock_pending_repayment(conn: Connection, repayment_id: int) -> Repayment | None:
    """The repayment, locked until the caller's transaction ends, if it is still pending and no
    other run holds it (None otherwise: settled, or being settled elsewhere)."""
    row = (
        conn.execute(
            sa.select(*REPAYMENT_FIELDS)
            .where(repayments.c.id == repayment_id, repayments.c.status == "pending")
            .with_for_update(skip_locked=True)
        )
        .mappings()
        .first()
    )
    return None if row is None else Repayment(**row)


def lock_held_escrow(conn: Connection, escrow_id: int) -> bool:
    """Lock a held escrow until the caller's transaction ends. False when it is no longer held
    or another run holds it."""
    locked = conn.execute(
        sa.select(escrows.c.id)
        .where(escrows.c.id == escrow_id, escrows.c.status == "held")
        .with_for_update(skip_locked=True)
    ).first()
    return locked is not None


INTENT_COLUMNS: dict[str, str] = {
    "retailer_id": "text",
    "business_date": "date",
    "currency": "text",
    "amount": "bigint",
    "debt_before": "bigint",
    "wallet_balance_before": "bigint",
    "limited_by": "text",
    "source_balance_id": "text",
    "destination_balance_id": "text",
    "ledger_reference": "text",
    "run_id": "text",
    "debt_version": "text",
}
_STORED = [name for name in INTENT_COLUMNS if name != "debt_version"]

CREATE_GUARDED_INTENTS_SQL = sa.text(
    f"""
    WITH intents AS (
        SELECT *
          FROM unnest({", ".join(f"CAST(:{n} AS {t}[])" for n, t in INTENT_COLUMNS.items())})
               AS i({", ".join(INTENT_COLUMNS)})
    )
    INSERT INTO lending.repayments ({", ".join(_STORED)})
    SELECT {", ".join(f"i.{name}" for name in _STORED)}
      FROM intents i
      JOIN lending.retailer_debts d
        ON d.retailer_id = i.retailer_id AND d.currency = i.currency
       AND d.outstanding_amount = i.debt_before
       AND (i.debt_version IS NULL OR CAST(d.xmin AS text) = i.debt_version)
    ON CONFLICT DO NOTHING
    RETURNING id
    """
)


def create_guarded_intents(
    conn: Connection, rows: Sequence[dict[str, Any]], business_date: date
) -> tuple[list[Repayment], dict[str, str]]:
    """Commit intents (pending) for the rows whose debt is still what the deduction was
    computed from, for retailers with no pending repayment and no record for the day.

    The debt rows are locked first (in retailer order), so a concurrent settlement of the same
    retailer either finished before (the debt changed: refused) or waits. Returns the created
    repayments and, for the refused retailers, why."""
    if not rows:
        return [], {}
    retailer_ids = sorted({row["retailer_id"] for row in rows})
    currencies = sorted({row["currency"] for row in rows})
    conn.execute(
        sa.text(
            "SELECT 1 FROM lending.retailer_debts WHERE retailer_id = ANY(:ids)"
            " AND currency = ANY(:currencies) ORDER BY retailer_id, currency FOR UPDATE"
        ),
        {"ids": retailer_ids, "currencies": currencies},
    )
    params = {name: [row.get(name) for row in rows] for name in INTENT_COLUMNS}
    created_ids = conn.execute(CREATE_GUARDED_INTENTS_SQL, params).scalars().all()
    created = [
        Repayment(**row)
        for row in conn.execute(
            sa.select(*REPAYMENT_FIELDS)
            .where(repayments.c.id.in_(created_ids))
            .order_by(repayments.c.retailer_id)
        ).mappings()
    ]
    refused_ids = sorted(set(retailer_ids) - {r.retailer_id for r in created})
    if not refused_ids:
        return created, {}
    seen = conn.execute(
        sa.text(
            """
            SELECT retailer_id, bool_or(status = 'pending'), bool_or(business_date = :day)
              FROM lending.repayments WHERE retailer_id = ANY(:ids) GROUP BY retailer_id
            """
        ),
        {"ids": refused_ids, "day": business_date},
    ).all()
    why = {
        retailer: PENDING_REPAYMENT if pending else ALREADY_RECORDED
        for retailer, pending, recorded in seen
        if pending or recorded
    }
    return created, {retailer: why.get(retailer, DEBT_CHANGED) for retailer in refused_ids}


def record_ledger_mismatch(
    conn: Connection,
    *,
    action: str,
    entity: str,
    entity_id: str,
    reference: str,
    transaction_id: str | None,
    problem: str,
    intent: dict[str, Any],
    actor: str,
    run_id: str | None,
) -> None:
    """An incident: the ledger holds, under our reference, a transfer that is not the one we
    meant. Nothing local changes; the entry (and the failed run's alert) asks a human."""
    record_audit(
        conn,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        new_value={
            "ledger_reference": reference,
            "ledger_transaction_id": transaction_id,
            "intent": intent,
        },  # fmt: skip
        reason=f"ledger transaction {transaction_id} ({reference}): {problem}",
        run_id=run_id,
    )
