"""Escrow release and wallet auto-deduct: the tables and references (workflow 4).

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

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa

from ..meta import metadata

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
