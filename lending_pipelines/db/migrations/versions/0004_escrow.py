"""Escrow release and wallet auto-deduct (workflow 4): Blnk balance mapping, escrows and their
releases, retailer debts, auto-deduct settings, repayments.

Revision ID: 0004_escrow
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_escrow"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
FALSE = sa.text("false")
SCHEMA = "lending"


def upgrade() -> None:
    op.create_table(
        "blnk_accounts",
        sa.Column("owner_type", sa.Text, nullable=False),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("balance_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("owner_type", "owner_id", "currency", name="pk_blnk_accounts"),
        sa.UniqueConstraint("balance_id", name="uq_blnk_accounts_balance_id"),
        sa.CheckConstraint(
            "owner_type IN ('retailer_wallet', 'wholesaler', 'escrow_pool', 'repayment_pool')",
            name="ck_blnk_accounts_owner_type",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "escrows",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_escrows"),
        sa.UniqueConstraint("order_id", name="uq_escrows_order_id"),
        sa.UniqueConstraint("ledger_reference", name="uq_escrows_ledger_reference"),
        sa.CheckConstraint("amount > 0", name="ck_escrows_amount_positive"),
        sa.CheckConstraint(
            "status IN ('held', 'released', 'disputed', 'refunded')", name="ck_escrows_status"
        ),
        sa.CheckConstraint(
            "status <> 'released' OR "
            "(released_at IS NOT NULL AND ledger_transaction_id IS NOT NULL)",
            name="ck_escrows_released_has_ledger_transaction",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_escrows_held_due",
        "escrows",
        ["auto_release_at"],
        postgresql_where=sa.text("status = 'held'"),
        schema=SCHEMA,
    )
    op.create_table(
        "escrow_releases",
        sa.Column("escrow_id", sa.BigInteger, nullable=False),
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
        sa.PrimaryKeyConstraint("escrow_id", name="pk_escrow_releases"),
        sa.ForeignKeyConstraint(
            ["escrow_id"],
            [f"{SCHEMA}.escrows.id"],
            name="fk_escrow_releases_escrow_id_escrows",
        ),
        sa.UniqueConstraint("ledger_reference", name="uq_escrow_releases_ledger_reference"),
        sa.UniqueConstraint(
            "ledger_transaction_id", name="uq_escrow_releases_ledger_transaction_id"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_escrow_releases_business_date", "escrow_releases", ["business_date"], schema=SCHEMA
    )
    op.create_table(
        "retailer_debts",
        sa.Column("retailer_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("outstanding_amount", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("retailer_id", "currency", name="pk_retailer_debts"),
        schema=SCHEMA,
    )
    op.create_table(
        "auto_deduct_settings",
        sa.Column("retailer_id", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("percentage", sa.Numeric(5, 2)),
        sa.Column("max_daily_amount", sa.BigInteger),
        sa.Column("min_wallet_balance", sa.BigInteger),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("retailer_id", name="pk_auto_deduct_settings"),
        sa.CheckConstraint(
            "percentage IS NULL OR (percentage > 0 AND percentage <= 100)",
            name="ck_auto_deduct_settings_percentage_range",
        ),
        sa.CheckConstraint(
            "max_daily_amount IS NULL OR max_daily_amount >= 0",
            name="ck_auto_deduct_settings_max_daily_non_negative",
        ),
        sa.CheckConstraint(
            "min_wallet_balance IS NULL OR min_wallet_balance >= 0",
            name="ck_auto_deduct_settings_min_wallet_non_negative",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "repayments",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_repayments"),
        sa.UniqueConstraint(
            "retailer_id", "business_date", name="uq_repayments_retailer_id_business_date"
        ),
        sa.UniqueConstraint("ledger_reference", name="uq_repayments_ledger_reference"),
        sa.CheckConstraint("amount > 0", name="ck_repayments_amount_positive"),
        sa.CheckConstraint(
            "status IN ('pending', 'applied', 'failed')", name="ck_repayments_status"
        ),
        sa.CheckConstraint(
            "status <> 'applied' OR ledger_transaction_id IS NOT NULL",
            name="ck_repayments_applied_has_ledger_transaction",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_repayments_pending",
        "repayments",
        ["business_date"],
        postgresql_where=sa.text("status = 'pending'"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_repayments_pending", "repayments", schema=SCHEMA)
    op.drop_table("repayments", schema=SCHEMA)
    op.drop_table("auto_deduct_settings", schema=SCHEMA)
    op.drop_table("retailer_debts", schema=SCHEMA)
    op.drop_index("ix_escrow_releases_business_date", "escrow_releases", schema=SCHEMA)
    op.drop_table("escrow_releases", schema=SCHEMA)
    op.drop_index("ix_escrows_held_due", "escrows", schema=SCHEMA)
    op.drop_table("escrows", schema=SCHEMA)
    op.drop_table("blnk_accounts", schema=SCHEMA)
