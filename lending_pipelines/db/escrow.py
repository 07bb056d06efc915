"""Escrow release and wallet auto-deduct: tables and set-based queries (workflow 4).

Money lives in Blnk; these tables hold what the back office knows about it: which Blnk balance
belongs to whom (`blnk_accounts`), escrows and their releases, retailer debts, auto-deduct
settings and repayments. Every ledger transfer has a deterministic reference
(`escrow-release:<escrow id>`, `auto-deduct:<retailer>:<business date>`), unique here and in
Blnk, so a re-run or a retry can never move money twice.

Repayments follow the outbox discipline: the intent (amount, reference) is committed as
`pending` before the ledger post; the outcome is recorded in a second transaction together with
the debt reduction and the audit entry. A crash in between leaves a `pending` row that the next
run posts again with the same reference and amount: Blnk answers "duplicate" and the existing
transaction is recorded.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ..domain.currency import KNOWN_CURRENCIES
from ..domain.deduction import LimitedBy, SkipReason
from .audit import record_audit
from .meta import metadata

NOW = sa.text("now()")
FALSE = sa.text("false")

ACCOUNT_TYPES = ("retailer_wallet", "wholesaler", "escrow_pool", "repayment_pool")
ESCROW_STATUSES = ("held", "released", "disputed", "refunded")
REPAYMENT_STATUSES = ("pending", "applied", "failed")
PLATFORM = "platform"  # owner_id of the platform's pool balances


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


blnk_accounts = sa.Table(
    "blnk_accounts",
    metadata,
    sa.Column("owner_type", sa.Text, primary_key=True),
    sa.Column("owner_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.Text, primary_key=True),
    sa.Column("balance_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("balance_id"),
    sa.CheckConstraint(_in("owner_type", ACCOUNT_TYPES), name="owner_type"),
)

escrows = sa.Table(
    "escrows",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("retailer_id", sa.Text, nullable=False),
    sa.Column("wholesaler_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="held"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("auto_release_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("released_at", sa.DateTime(timezone=True)),
    sa.Column("ledger_reference", sa.Text),
    sa.Column("ledger_transaction_id", sa.Text),
    sa.Column("disputed_at", sa.DateTime(timezone=True)),
    sa.Column("status_reason", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("order_id"),
    sa.UniqueConstraint("ledger_reference"),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.CheckConstraint(_in("status", ESCROW_STATUSES), name="status"),
    sa.CheckConstraint(
        "status <> 'released' OR (released_at IS NOT NULL AND ledger_transaction_id IS NOT NULL)",
        name="released_has_ledger_transaction",
    ),
    sa.Index("ix_escrows_held_due", "auto_release_at", postgresql_where=sa.text("status = 'held'")),
)

escrow_releases = sa.Table(
    "escrow_releases",
    metadata,
    sa.Column("escrow_id", sa.BigInteger, sa.ForeignKey(escrows.c.id), primary_key=True),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("source_balance_id", sa.Text, nullable=False),
    sa.Column("destination_balance_id", sa.Text, nullable=False),
    sa.Column("ledger_reference", sa.Text, nullable=False),
    sa.Column("ledger_transaction_id", sa.Text, nullable=False),
    sa.Column("recovered", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("released_by", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("released_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("ledger_reference"),
    sa.UniqueConstraint("ledger_transaction_id"),
    sa.Index("ix_escrow_releases_business_date", "business_date"),
)

retailer_debts = sa.Table(
    "retailer_debts",
    metadata,
    sa.Column("retailer_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.Text, primary_key=True),
    # Reduced by applied auto-deduct repayments (apply_repayment), never below zero (clamped
    # there; a trigger refuses any reduction below zero, migration 0008); may arrive negative
    # from upstream systems, which auto-deduct reports as bad data instead of acting on it.
    sa.Column("outstanding_amount", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

auto_deduct_settings = sa.Table(
    "auto_deduct_settings",
    metadata,
    sa.Column("retailer_id", sa.Text, primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=FALSE),
    # NULL: LENDING_AUTO_DEDUCT_PERCENT (30)
    sa.Column("percentage", sa.Numeric(5, 2)),
    # NULL: no daily cap
    sa.Column("max_daily_amount", sa.BigInteger),
    # NULL: LENDING_MIN_WALLET_BALANCE_MINOR (10,000 RWF)
    sa.Column("min_wallet_balance", sa.BigInteger),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint(
        "percentage IS NULL OR (percentage > 0 AND percentage <= 100)", name="percentage_range"
    ),
    sa.CheckConstraint(
        "max_daily_amount IS NULL OR max_daily_amount >= 0", name="max_daily_non_negative"
    ),
    sa.CheckConstraint(
        "min_wallet_balance IS NULL OR min_wallet_balance >= 0", name="min_wallet_non_negative"
    ),
)

repayments = sa.Table(
    "repayments",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("retailer_id", sa.Text, nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("debt_before", sa.BigInteger, nullable=False),
    sa.Column("wallet_balance_before", sa.BigInteger, nullable=False),
    sa.Column("limited_by", sa.Text),
    sa.Column("source_balance_id", sa.Text, nullable=False),
    sa.Column("destination_balance_id", sa.Text, nullable=False),
    sa.Column("ledger_reference", sa.Text, nullable=False),
    sa.Column("ledger_transaction_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("recovered", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("error", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("applied_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("retailer_id", "business_date"),
    sa.UniqueConstraint("ledger_reference"),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.CheckConstraint(_in("status", REPAYMENT_STATUSES), name="status"),
    sa.CheckConstraint(
        "status <> 'applied' OR ledger_transaction_id IS NOT NULL",
        name="applied_has_ledger_transaction",
    ),
    sa.Index(
        "ix_repayments_pending", "business_date", postgresql_where=sa.text("status = 'pending'")
    ),
    # At most one transfer in flight per wallet, whatever its date (migration 0008).
    sa.Index(
        "uq_repayments_one_pending_per_retailer",
        "retailer_id",
        "currency",
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    ),
)


def escrow_release_reference(escrow_id: int) -> str:
    return f"escrow-release:{escrow_id}"


def auto_deduct_reference(retailer_id: str, business_date: date) -> str:
    return f"auto-deduct:{retailer_id}:{business_date.isoformat()}"


class EscrowStateError(ValueError):
    """An escrow is not in the state the operation requires."""


# --- Blnk balance mapping ----------------------------------------------------------------------


def upsert_blnk_accounts(conn: Connection, rows: Sequence[dict[str, str]]) -> None:
    """Map owners to Blnk balance ids: rows of owner_type, owner_id, currency, balance_id."""
    if not rows:
        return
    stmt = insert(blnk_accounts).values(list(rows))
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                blnk_accounts.c.owner_type,
                blnk_accounts.c.owner_id,
                blnk_accounts.c.currency,
            ],
            set_={"balance_id": stmt.excluded.balance_id},
        )
    )


# --- escrows -----------------------------------------------------------------------------------


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


# --- auto-deduct ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeductCandidate:
    retailer_id: str
    currency: str
    debt: int
    wallet_balance_id: str | None
    pool_balance_id: str | None
    # The debt row's version (xmin) when read: an intent is only created if it is unchanged.
    debt_version: str | None = None

    def problem(self, wallet_currency: str) -> str | None:
        """Bad data that stops a deduction before any wallet is read (None: proceed)."""
        if self.currency not in KNOWN_CURRENCIES:
            return f"unknown_currency: {self.currency!r}"
        if self.debt < 0:
            return f"negative_debt: {self.debt}"
        if self.currency != wallet_currency:
            return f"not_wallet_currency: debt in {self.currency}, wallets in {wallet_currency}"
        if self.wallet_balance_id is None:
            return f"missing_wallet_balance: retailer {self.retailer_id!r} ({self.currency})"
        if self.pool_balance_id is None:
            return f"missing_repayment_pool_balance: {self.currency}"
        return None


def auto_deduct_candidates(conn: Connection, business_date: date) -> list[DeductCandidate]:
    """Retailers with auto-deduct enabled and a non-zero debt that have no repayment record
    for `business_date` yet, with their wallet and the repayment pool's Blnk balances."""
    rows = conn.execute(
        sa.text(
            """
            SELECT d.retailer_id, d.currency, d.outstanding_amount AS debt,
                   w.balance_id AS wallet_balance_id, p.balance_id AS pool_balance_id,
                   CAST(d.xmin AS text) AS debt_version
              FROM lending.retailer_debts d
              JOIN lending.auto_deduct_settings s
                ON s.retailer_id = d.retailer_id AND s.enabled
              LEFT JOIN lending.blnk_accounts w
                ON w.owner_type = 'retailer_wallet' AND w.owner_id = d.retailer_id
               AND w.currency = d.currency
              LEFT JOIN lending.blnk_accounts p
                ON p.owner_type = 'repayment_pool' AND p.owner_id = :platform
               AND p.currency = d.currency
             WHERE d.outstanding_amount <> 0
               AND NOT EXISTS (
                     SELECT 1 FROM lending.repayments r
                      WHERE r.retailer_id = d.retailer_id AND r.business_date = :business_date)
             ORDER BY d.retailer_id, d.currency
            """
        ),
        {"business_date": business_date, "platform": PLATFORM},
    ).mappings()
    return [DeductCandidate(**row) for row in rows]


class ComputedDeduction(NamedTuple):  # a NamedTuple: 100,000 of them are built per run
    retailer_id: str
    debt: int
    wallet_balance: int
    amount: int
    limited_by: LimitedBy | None
    skip_reason: SkipReason | None


# The rule of domain/deduction.py::compute_deduction, for every retailer in one statement.
# div() truncates toward zero, which is floor for the non-negative debts that get this far.
COMPUTE_DEDUCTIONS_SQL = sa.text(
    """
    WITH readings AS (
        -- Two strings split by the server: binding 100,000 readings as arrays costs more
        -- (every element adapted in Python) than the whole statement.
        SELECT *
          FROM unnest(string_to_array(:retailer_ids, :separator),
                      CAST(string_to_array(:wallet_balances, ',') AS bigint[]))
               AS r(retailer_id, wallet_balance)
    ), accounts AS MATERIALIZED (
        -- Joined on their own first: the planner cannot estimate the unnest() rows and would
        -- otherwise look settings up row by row instead of hashing.
        SELECT d.retailer_id, d.outstanding_amount AS debt,
               CAST(COALESCE(s.percentage, CAST(:default_percentage AS numeric)) * 100 AS bigint)
                   AS basis_points,
               s.max_daily_amount AS max_daily,
               COALESCE(s.min_wallet_balance, CAST(:default_minimum AS bigint)) AS minimum
          FROM lending.retailer_debts d
          JOIN lending.auto_deduct_settings s ON s.retailer_id = d.retailer_id
         WHERE d.currency = :currency
    ), inputs AS (
        SELECT a.*, r.wallet_balance
          FROM readings r JOIN accounts a ON a.retailer_id = r.retailer_id
    ), bounded AS (
        SELECT *,
               CASE WHEN debt <= 900000000000000 THEN debt * basis_points / 10000  -- no overflow
                    ELSE CAST(div(CAST(debt AS numeric) * basis_points, 10000) AS bigint)
               END AS share,
               wallet_balance - minimum AS headroom
          FROM inputs
    ), decided AS (
        SELECT *,
               CASE WHEN debt <= 0 OR wallet_balance < minimum THEN 0
                    ELSE LEAST(share, COALESCE(max_daily, share), headroom) END AS amount,
               debt <= 0 OR wallet_balance < minimum AS excluded
          FROM bounded
    )
    SELECT retailer_id, debt, wallet_balance, amount,
           CASE WHEN excluded THEN NULL
                WHEN amount = share THEN 'percentage'
                WHEN amount = max_daily THEN 'max_daily'
                ELSE 'minimum_balance' END AS limited_by,
           CASE WHEN debt < 0 THEN 'negative_debt'
                WHEN debt = 0 THEN 'no_debt'
                WHEN wallet_balance < minimum THEN 'wallet_below_minimum'
                WHEN amount > 0 THEN NULL
                WHEN amount = share THEN 'rounds_to_zero'
                WHEN amount = max_daily THEN 'max_daily_zero'
                ELSE 'wallet_at_minimum' END AS skip_reason
      FROM decided
    """
)


def compute_deductions(
    conn: Connection,
    currency: str,
    readings: Sequence[tuple[str, int]],
    *,
    default_percentage: Decimal,
    default_minimum: int,
) -> list[ComputedDeduction]:
    """Today's deduction for every (retailer, wallet balance read from Blnk) against the
    retailer's debt in `currency`, computed in one statement (rows in no particular order)."""
    if not readings:
        return []
    retailer_ids, balances = zip(*readings, strict=True)
    with _collector_paused():
        return _computed(
            conn, currency, retailer_ids, balances, default_percentage, default_minimum
        )


def _computed(
    conn: Connection,
    currency: str,
    retailer_ids: Sequence[str],
    balances: Sequence[int],
    default_percentage: Decimal,
    default_minimum: int,
) -> list[ComputedDeduction]:
    rows = conn.execute(
        COMPUTE_DEDUCTIONS_SQL,
        {
            "currency": currency,
            "retailer_ids": _joined_ids(retailer_ids),
            "separator": ID_SEPARATOR,
            # integers as text; anything else (1.5, True) fails the statement's bigint cast
            "wallet_balances": ",".join(map(str, balances)),
            "default_percentage": default_percentage,
            "default_minimum": default_minimum,
        },
    ).all()  # fetched at once: iterating the result fetches row by row
    limits, reasons = _ENUMS[LimitedBy], _ENUMS[SkipReason]
    return [
        ComputedDeduction(retailer_id, debt, wallet, amount, limits[limited_by], reasons[reason])
        for retailer_id, debt, wallet, amount, limited_by, reason in rows
    ]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while 100,000 result rows become objects: its passes
    over them (they hold no cycles) took as long as the statement itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


ID_SEPARATOR = "\x1f"  # ASCII unit separator: never part of a retailer id (checked)


def _joined_ids(retailer_ids: Sequence[str]) -> str:
    """The ids as one string the statement splits; an id that would not split back to itself
    (empty, or containing the separator) is refused, naming it."""
    joined = ID_SEPARATOR.join(retailer_ids)
    if joined.count(ID_SEPARATOR) != len(retailer_ids) - 1 or not all(retailer_ids):
        bad = next(r for r in retailer_ids if not r or ID_SEPARATOR in r)
        raise ValueError(f"retailer_id {bad!r}: empty or contains the separator \\x1f")
    return joined


# Text from SQL → enum member, by dictionary lookup (100,000 rows: no per-row enum parsing).
_ENUMS = {
    enum: {None: None, **{member.value: member for member in enum}}
    for enum in (LimitedBy, SkipReason)
}


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
