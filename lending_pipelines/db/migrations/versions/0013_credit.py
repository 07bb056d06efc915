"""Retailer credit operations (workflow 2): the platform's retailers, credit accounts, orders
and credit transactions, and the workflow's own pending orders and retailer insights, with the
indexes the guardrail, reminder, expiry, reversal and insight queries use.

Revision ID: 0013_credit
Revises: 0005_outbox_delivery
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013_credit"
down_revision = "0005_outbox_delivery"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
EMPTY = sa.text("'[]'::jsonb")
SCHEMA = "lending"


def _ts(name: str, **kwargs) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kwargs)


def upgrade() -> None:
    op.create_table(
        "retailers",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("whatsapp_number", sa.Text, nullable=False),
        sa.Column("preferred_language", sa.Text, nullable=False, server_default="en"),
        sa.Column("credit_status", sa.Text, nullable=False, server_default="ACTIVE"),
        _ts("credit_paused_at"),
        sa.Column("credit_pause_reason", sa.Text),
        _ts("created_at", nullable=False, server_default=NOW),
        _ts("updated_at", nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_retailers"),
        sa.CheckConstraint(
            "credit_status IN ('ACTIVE', 'PAUSED', 'BLOCKED')",
            name="ck_retailers_credit_status",
        ),
        sa.CheckConstraint(
            "credit_status <> 'PAUSED' OR credit_paused_at IS NOT NULL",
            name="ck_retailers_paused_has_time",
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_retailers_credit_status", "retailers", ["credit_status"], schema=SCHEMA)
    op.create_table(
        "credit_accounts",
        sa.Column("retailer_id", sa.Text, nullable=False),
        sa.Column("credit_limit", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("max_order_value", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("max_outstanding_days", sa.Integer, nullable=False, server_default="30"),
        sa.Column("currency", sa.Text, nullable=False, server_default="INR"),
        _ts("updated_at", nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("retailer_id", name="pk_credit_accounts"),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            [f"{SCHEMA}.retailers.id"],
            name="fk_credit_accounts_retailer_id_retailers",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "credit_limit >= 0", name="ck_credit_accounts_credit_limit_not_negative"
        ),
        sa.CheckConstraint(
            "max_order_value >= 0", name="ck_credit_accounts_max_order_value_not_negative"
        ),
        sa.CheckConstraint(
            "max_outstanding_days >= 0",
            name="ck_credit_accounts_max_outstanding_days_not_negative",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("retailer_id", sa.Text, nullable=False),
        sa.Column("payment_mode", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="PLACED"),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("items", JSONB, nullable=False, server_default=EMPTY),
        _ts("created_at", nullable=False, server_default=NOW),
        _ts("failed_at"),
        sa.Column("failure_reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.ForeignKeyConstraint(
            ["retailer_id"], [f"{SCHEMA}.retailers.id"], name="fk_orders_retailer_id_retailers"
        ),
        sa.CheckConstraint("payment_mode IN ('CREDIT', 'COD')", name="ck_orders_payment_mode"),
        sa.CheckConstraint(
            "status IN ('PLACED', 'CONFIRMED', 'DELIVERED', 'FAILED', 'CANCELLED')",
            name="ck_orders_status",
        ),
        sa.CheckConstraint("amount > 0", name="ck_orders_amount_positive"),
        sa.CheckConstraint(
            "status <> 'FAILED' OR failed_at IS NOT NULL", name="ck_orders_failed_has_time"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_orders_retailer_created", "orders", ["retailer_id", "created_at"], schema=SCHEMA
    )
    op.create_index(
        "ix_orders_failed",
        "orders",
        ["failed_at"],
        postgresql_where=sa.text("status = 'FAILED'"),
        schema=SCHEMA,
    )
    op.create_table(
        "credit_transactions",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("retailer_id", sa.Text, nullable=False),
        sa.Column("order_id", sa.BigInteger),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("due_date", sa.Date),
        sa.Column("status", sa.Text, nullable=False, server_default="OPEN"),
        _ts("reminder_sent_at"),
        sa.Column("reminder_count", sa.Integer, nullable=False, server_default="0"),
        _ts("cleared_at"),
        sa.Column("cleared_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("notes", sa.Text),
        sa.Column("applies_to", sa.BigInteger),
        sa.Column("reversal_of", sa.BigInteger),
        _ts("created_at", nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_credit_transactions"),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            [f"{SCHEMA}.retailers.id"],
            name="fk_credit_transactions_retailer_id_retailers",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], [f"{SCHEMA}.orders.id"], name="fk_credit_transactions_order_id_orders"
        ),
        sa.ForeignKeyConstraint(
            ["applies_to"],
            [f"{SCHEMA}.credit_transactions.id"],
            name="fk_credit_transactions_applies_to_credit_transactions",
        ),
        sa.ForeignKeyConstraint(
            ["reversal_of"],
            [f"{SCHEMA}.credit_transactions.id"],
            name="fk_credit_transactions_reversal_of_credit_transactions",
        ),
        sa.UniqueConstraint("reversal_of", name="uq_credit_transactions_reversal_of"),
        sa.CheckConstraint(
            "type IN ('DEBIT', 'CREDIT', 'ADJUSTMENT')", name="ck_credit_transactions_type"
        ),
        sa.CheckConstraint(
            "status IN ('OPEN', 'PARTIAL', 'CLEARED', 'REVERSED')",
            name="ck_credit_transactions_status",
        ),
        sa.CheckConstraint(
            "(type = 'ADJUSTMENT' AND amount <> 0) OR amount > 0",
            name="ck_credit_transactions_amount_sign",
        ),
        sa.CheckConstraint(
            "cleared_amount >= 0 AND cleared_amount <= abs(amount)",
            name="ck_credit_transactions_cleared_within_amount",
        ),
        sa.CheckConstraint(
            "NOT (type = 'DEBIT' OR (type = 'ADJUSTMENT' AND amount > 0)) OR due_date IS NOT NULL",
            name="ck_credit_transactions_charge_has_due_date",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_credit_transactions_unpaid",
        "credit_transactions",
        ["retailer_id", "due_date"],
        postgresql_include=["amount", "cleared_amount", "currency", "created_at"],
        postgresql_where=sa.text(
            "status IN ('OPEN', 'PARTIAL') AND amount > 0 AND type IN ('DEBIT', 'ADJUSTMENT')"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_credit_transactions_order_id", "credit_transactions", ["order_id"], schema=SCHEMA
    )
    op.create_index(
        "ix_credit_transactions_retailer_cleared",
        "credit_transactions",
        ["retailer_id", "cleared_at"],
        schema=SCHEMA,
    )
    op.create_table(
        "pending_orders",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("retailer_id", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("items", JSONB, nullable=False, server_default=EMPTY),
        sa.Column("status", sa.Text, nullable=False, server_default="PENDING"),
        _ts("created_at", nullable=False, server_default=NOW),
        _ts("expired_at"),
        _ts("completed_at"),
        _ts("follow_up_sent_at"),
        sa.PrimaryKeyConstraint("id", name="pk_pending_orders"),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            [f"{SCHEMA}.retailers.id"],
            name="fk_pending_orders_retailer_id_retailers",
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'EXPIRED', 'COMPLETED')", name="ck_pending_orders_status"
        ),
        sa.CheckConstraint("amount > 0", name="ck_pending_orders_amount_positive"),
        sa.CheckConstraint(
            "status <> 'EXPIRED' OR expired_at IS NOT NULL",
            name="ck_pending_orders_expired_has_time",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_pending_orders_pending_created",
        "pending_orders",
        ["created_at"],
        postgresql_where=sa.text("status = 'PENDING'"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_pending_orders_expired_no_follow_up",
        "pending_orders",
        ["expired_at"],
        postgresql_where=sa.text("status = 'EXPIRED' AND follow_up_sent_at IS NULL"),
        schema=SCHEMA,
    )
    op.create_table(
        "retailer_insights",
        sa.Column("retailer_id", sa.Text, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
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
        _ts("generated_at", nullable=False, server_default=NOW),
        sa.Column("run_id", sa.Text),
        sa.PrimaryKeyConstraint("retailer_id", "period_end", name="pk_retailer_insights"),
        sa.ForeignKeyConstraint(
            ["retailer_id"],
            [f"{SCHEMA}.retailers.id"],
            name="fk_retailer_insights_retailer_id_retailers",
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "retailer_insights",
        "pending_orders",
        "credit_transactions",
        "orders",
        "credit_accounts",
        "retailers",
    ):
        op.drop_table(table, schema=SCHEMA)
