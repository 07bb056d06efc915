"""Escrows and their releases: creating escrows, the candidates due, recording a release,
disputes, and the integrity of what was released."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ...domain.currency import KNOWN_CURRENCIES
from ..audit import record_audit
from .tables import (
    PLATFORM,
    EscrowStateError,
    blnk_accounts,
    escrow_release_reference,
    escrow_releases,
    escrows,
)


def create_escrows(conn: Connection, rows: Sequence[dict[str, Any]], release_days: int) -> int:
    """Insert escrows (new order ids only). `auto_release_at` defaults to `created_at` +
    `release_days`; `created_at` defaults to now. Returns how many were inserted."""
    if not rows:
        return 0
    now = conn.execute(sa.select(sa.func.now())).scalar_one()
    values = []
    for row in rows:
        created_at = row.get("created_at") or now
        values.append(
            {
                **row,
                "created_at": created_at,
                "auto_release_at": row.get("auto_release_at")
                or created_at + timedelta(days=release_days),
            }
        )
    stmt = insert(escrows).values(values).on_conflict_do_nothing(index_elements=["order_id"])
    return len(conn.execute(stmt.returning(escrows.c.id)).all())


@dataclass(frozen=True)
class ReleaseCandidate:
    escrow_id: int
    order_id: str
    wholesaler_id: str
    amount: int
    currency: str
    status: str
    auto_release_at: datetime
    source_balance_id: str | None
    destination_balance_id: str | None

    @property
    def reference(self) -> str:
        return escrow_release_reference(self.escrow_id)

    @property
    def problem(self) -> str | None:
        """Why this escrow cannot be released as the data stands (None: it can)."""
        if self.currency not in KNOWN_CURRENCIES:
            return f"unknown_currency: {self.currency!r}"
        if self.destination_balance_id is None:
            return (
                f"missing_wholesaler_balance: wholesaler {self.wholesaler_id!r} ({self.currency})"
            )
        if self.source_balance_id is None:
            return f"missing_escrow_pool_balance: {self.currency}"
        return None


def release_candidates(
    conn: Connection, *, cutoff: datetime | None = None, escrow_id: int | None = None
) -> list[ReleaseCandidate]:
    """Held escrows due at `cutoff` (auto_release_at <= cutoff), or the one escrow `escrow_id`
    in any status, with the Blnk balances a release moves money between."""
    wholesaler = blnk_accounts.alias("wholesaler")
    pool = blnk_accounts.alias("pool")
    query = (
        sa.select(
            escrows.c.id.label("escrow_id"),
            escrows.c.order_id,
            escrows.c.wholesaler_id,
            escrows.c.amount,
            escrows.c.currency,
            escrows.c.status,
            escrows.c.auto_release_at,
            pool.c.balance_id.label("source_balance_id"),
            wholesaler.c.balance_id.label("destination_balance_id"),
        )
        .select_from(
            escrows.outerjoin(
                wholesaler,
                sa.and_(
                    wholesaler.c.owner_type == "wholesaler",
                    wholesaler.c.owner_id == escrows.c.wholesaler_id,
                    wholesaler.c.currency == escrows.c.currency,
                ),
            ).outerjoin(
                pool,
                sa.and_(
                    pool.c.owner_type == "escrow_pool",
                    pool.c.owner_id == PLATFORM,
                    pool.c.currency == escrows.c.currency,
                ),
            )
        )
        .order_by(escrows.c.auto_release_at, escrows.c.id)
    )
    if escrow_id is not None:
        query = query.where(escrows.c.id == escrow_id)
    else:
        if cutoff is None:
            raise ValueError("release_candidates needs a cutoff or an escrow_id")
        query = query.where(escrows.c.status == "held", escrows.c.auto_release_at <= cutoff)
    return [ReleaseCandidate(**row) for row in conn.execute(query).mappings()]


def record_release(
    conn: Connection,
    candidate: ReleaseCandidate,
    *,
    business_date: date,
    transaction_id: str,
    recovered: bool,
    actor: str,
    reason: str,
    run_id: str | None,
) -> bool:
    """Mark a held escrow released, record the release and audit it, in the caller's
    transaction. False (and nothing written) when the escrow is no longer held."""
    updated = conn.execute(
        sa.update(escrows)
        .where(escrows.c.id == candidate.escrow_id, escrows.c.status == "held")
        .values(
            status="released",
            released_at=sa.func.now(),
            ledger_reference=candidate.reference,
            ledger_transaction_id=transaction_id,
            updated_at=sa.func.now(),
        )
        .returning(escrows.c.id)
    ).first()
    if updated is None:
        return False
    conn.execute(
        sa.insert(escrow_releases).values(
            escrow_id=candidate.escrow_id,
            business_date=business_date,
            amount=candidate.amount,
            currency=candidate.currency,
            source_balance_id=candidate.source_balance_id,
            destination_balance_id=candidate.destination_balance_id,
            ledger_reference=candidate.reference,
            ledger_transaction_id=transaction_id,
            recovered=recovered,
            released_by=actor,
            run_id=run_id,
        )
    )
    record_audit(
        conn,
        actor=actor,
        action="escrow.release",
        entity="escrow",
        entity_id=candidate.escrow_id,
        old_value={"status": "held"},
        new_value={
            "status": "released",
            "amount": candidate.amount,
            "currency": candidate.currency,
            "wholesaler_id": candidate.wholesaler_id,
            "ledger_reference": candidate.reference,
            "ledger_transaction_id": transaction_id,
            "recovered_from_ledger": recovered,
        },
        reason=reason,
        run_id=run_id,
    )
    return True


def mark_escrow_disputed(
    conn: Connection, escrow_id: int, *, actor: str, reason: str, run_id: str | None
) -> None:
    """Held → disputed (never released while disputed), audited. Raises EscrowStateError for
    an unknown escrow or one that is not held."""
    current = conn.execute(
        sa.select(escrows.c.status).where(escrows.c.id == escrow_id).with_for_update()
    ).scalar_one_or_none()
    if current is None:
        raise EscrowStateError(f"escrow {escrow_id} does not exist")
    if current != "held":
        raise EscrowStateError(
            f"escrow {escrow_id} is {current!r}; only held escrows can be disputed"
        )
    conn.execute(
        sa.update(escrows)
        .where(escrows.c.id == escrow_id)
        .values(
            status="disputed",
            disputed_at=sa.func.now(),
            status_reason=reason,
            updated_at=sa.func.now(),
        )
    )
    record_audit(
        conn,
        actor=actor,
        action="escrow.dispute",
        entity="escrow",
        entity_id=escrow_id,
        old_value={"status": "held"},
        new_value={"status": "disputed"},
        reason=reason,
        run_id=run_id,
    )


def releases_on(conn: Connection, business_date: date) -> list[dict[str, Any]]:
    query = (
        sa.select(escrow_releases)
        .where(escrow_releases.c.business_date == business_date)
        .order_by(escrow_releases.c.escrow_id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def release_integrity_problems(conn: Connection) -> list[str]:
    """Every way an escrow could look released twice or half-released, as readable lines."""
    problems = conn.execute(
        sa.text(
            """
            SELECT 'escrow ' || e.id || ' is released but has ' || count(r.escrow_id)
                   || ' release records'
              FROM lending.escrows e
              LEFT JOIN lending.escrow_releases r ON r.escrow_id = e.id
             WHERE e.status = 'released'
             GROUP BY e.id
            HAVING count(r.escrow_id) <> 1
            UNION ALL
            SELECT 'escrow ' || e.id || ' has a release record but is ' || e.status
              FROM lending.escrows e JOIN lending.escrow_releases r ON r.escrow_id = e.id
             WHERE e.status <> 'released'
            UNION ALL
            SELECT 'escrow ' || e.id || ' ledger transaction ' || e.ledger_transaction_id
                   || ' differs from its release record ' || r.ledger_transaction_id
              FROM lending.escrows e JOIN lending.escrow_releases r ON r.escrow_id = e.id
             WHERE e.ledger_transaction_id IS DISTINCT FROM r.ledger_transaction_id
            """
        )
    ).scalars()
    return list(problems)
