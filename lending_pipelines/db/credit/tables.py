"""Retailer credit operations (workflow 2): the tables.

Written by the ordering platform (external assets in Dagster, lineage starts there):
`retailers` (credit status, pause facts, WhatsApp number, language), `credit_accounts` (limit,
max order value, max outstanding days, currency; defaults so none is NULL), `orders` and
`credit_transactions` (DEBIT for credit orders and debit adjustments, CREDIT for payments and
reversals, ADJUSTMENT for operator corrections). Owned by this workflow: `pending_orders`
(checkouts that expire) and `retailer_insights` (one row per retailer per period).

Amounts are integer minor units. A charge (DEBIT, or an ADJUSTMENT with a positive amount) is
owed until cleared: outstanding = Σ (amount − cleared_amount) over charges OPEN or PARTIAL.
A settlement (CREDIT, or an ADJUSTMENT with a negative amount) names the charge it settles in
`applies_to`; a failed order's reversal names the debit in `reversal_of`, unique, so a debit is
reversed at most once whatever runs overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ..meta import metadata

NOW = sa.text("now()")
CREDIT_STATUSES = ("ACTIVE", "PAUSED", "BLOCKED")
PAYMENT_MODES = ("CREDIT", "COD")
ORDER_STATUSES = ("PLACED", "CONFIRMED", "DELIVERED", "FAILED", "CANCELLED")
TRANSACTION_TYPES = ("DEBIT", "CREDIT", "ADJUSTMENT")
TRANSACTION_STATUSES = ("OPEN", "PARTIAL", "CLEARED", "REVERSED")
PENDING_STATUSES = ("PENDING", "EXPIRED", "COMPLETED")
UNPAID = ("OPEN", "PARTIAL")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


retailers = sa.Table(
    "retailers",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("whatsapp_number", sa.Text, nullable=False),
    sa.Column("preferred_language", sa.Text, nullable=False, server_default="en"),
    sa.Column("credit_status", sa.Text, nullable=False, server_default="ACTIVE"),
    sa.Column("credit_paused_at", sa.DateTime(timezone=True)),
    sa.Column("credit_pause_reason", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint(_in("credit_status", CREDIT_STATUSES), name="credit_status"),
    sa.CheckConstraint(
        "credit_status <> 'PAUSED' OR credit_paused_at IS NOT NULL", name="paused_has_time"
    ),
    sa.Index("ix_retailers_credit_status", "credit_status"),
)

credit_accounts = sa.Table(
    "credit_accounts",
    metadata,
    sa.Column(
        "retailer_id",
        sa.Text,
        sa.ForeignKey("lending.retailers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("credit_limit", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("max_order_value", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("max_outstanding_days", sa.Integer, nullable=False, server_default="30"),
    sa.Column("currency", sa.Text, nullable=False, server_default="INR"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("credit_limit >= 0", name="credit_limit_not_negative"),
    sa.CheckConstraint("max_order_value >= 0", name="max_order_value_not_negative"),
    sa.CheckConstraint("max_outstanding_days >= 0", name="max_outstanding_days_not_negative"),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("retailer_id", sa.Text, sa.ForeignKey("lending.retailers.id"), nullable=False),
    sa.Column("payment_mode", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="PLACED"),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("items", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("failed_at", sa.DateTime(timezone=True)),
    sa.Column("failure_reason", sa.Text),
    sa.CheckConstraint(_in("payment_mode", PAYMENT_MODES), name="payment_mode"),
    sa.CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.CheckConstraint("status <> 'FAILED' OR failed_at IS NOT NULL", name="failed_has_time"),
    sa.Index("ix_orders_retailer_created", "retailer_id", "created_at"),
    sa.Index("ix_orders_failed", "failed_at", postgresql_where=sa.text("status = 'FAILED'")),
)

credit_transactions = sa.Table(
    "credit_transactions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("retailer_id", sa.Text, sa.ForeignKey("lending.retailers.id"), nullable=False),
    sa.Column("order_id", sa.BigInteger, sa.ForeignKey("lending.orders.id")),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("due_date", sa.Date),
    sa.Column("status", sa.Text, nullable=False, server_default="OPEN"),
    sa.Column("reminder_sent_at", sa.DateTime(timezone=True)),
    sa.Column("reminder_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cleared_at", sa.DateTime(timezone=True)),
    sa.Column("cleared_amount", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("notes", sa.Text),
    sa.Column("applies_to", sa.BigInteger, sa.ForeignKey("lending.credit_transactions.id")),
    sa.Column("reversal_of", sa.BigInteger, sa.ForeignKey("lending.credit_transactions.id")),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("reversal_of"),
    sa.CheckConstraint(_in("type", TRANSACTION_TYPES), name="type"),
    sa.CheckConstraint(_in("status", TRANSACTION_STATUSES), name="status"),
    sa.CheckConstraint("(type = 'ADJUSTMENT' AND amount <> 0) OR amount > 0", name="amount_sign"),
    sa.CheckConstraint(
        "cleared_amount >= 0 AND cleared_amount <= abs(amount)", name="cleared_within_amount"
    ),
    sa.CheckConstraint(
        "NOT (type = 'DEBIT' OR (type = 'ADJUSTMENT' AND amount > 0)) OR due_date IS NOT NULL",
        name="charge_has_due_date",
    ),
    # Covers the unpaid-charge reads (outstanding, aging, guardrails, reminders): its predicate
    # is db/credit/exposure.py's UNPAID_CHARGE, so those scans never touch the paid history.
    sa.Index(
        "ix_credit_transactions_unpaid",
        "retailer_id",
        "due_date",
        postgresql_include=["amount", "cleared_amount", "currency", "created_at"],
        postgresql_where=sa.text(
            "status IN ('OPEN', 'PARTIAL') AND amount > 0 AND type IN ('DEBIT', 'ADJUSTMENT')"
        ),
    ),
    sa.Index("ix_credit_transactions_order_id", "order_id"),
    sa.Index("ix_credit_transactions_retailer_cleared", "retailer_id", "cleared_at"),
)

pending_orders = sa.Table(
    "pending_orders",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("retailer_id", sa.Text, sa.ForeignKey("lending.retailers.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("items", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("status", sa.Text, nullable=False, server_default="PENDING"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("expired_at", sa.DateTime(timezone=True)),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("follow_up_sent_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(_in("status", PENDING_STATUSES), name="status"),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.CheckConstraint("status <> 'EXPIRED' OR expired_at IS NOT NULL", name="expired_has_time"),
    sa.Index(
        "ix_pending_orders_pending_created",
        "created_at",
        postgresql_where=sa.text("status = 'PENDING'"),
    ),
    sa.Index(
        "ix_pending_orders_expired_no_follow_up",
        "expired_at",
        postgresql_where=sa.text("status = 'EXPIRED' AND follow_up_sent_at IS NULL"),
    ),
)

retailer_insights = sa.Table(
    "retailer_insights",
    metadata,
    sa.Column("retailer_id", sa.Text, sa.ForeignKey("lending.retailers.id"), primary_key=True),
    sa.Column("period_end", sa.Date, primary_key=True),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("orders_count", sa.Integer, nullable=False),
    sa.Column("spend", sa.BigInteger, nullable=False),
    sa.Column("average_order_value", sa.BigInteger),
    sa.Column("top_products", JSONB, nullable=False),
    sa.Column("repayments_count", sa.Integer, nullable=False),
    sa.Column("on_time_rate", sa.Numeric(5, 4)),
    sa.Column("utilisation", sa.Numeric(12, 4)),
    sa.Column("outstanding", sa.BigInteger, nullable=False),
    sa.Column("credit_limit", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("run_id", sa.Text),
)
