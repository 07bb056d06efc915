"""Loan polling and M-Pesa auto-disbursement (workflow 1): partners with their Fineract and
M-Pesa configuration (secrets encrypted), auto-disbursal settings per loan product, tracked
loans, poll attempts and disbursement requests.

Revision ID: 0002_loans
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_loans"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
SCHEMA = "lending"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    ]


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("fineract_base_url", sa.Text),
        sa.Column("fineract_tenant_id", sa.Text),
        sa.Column("fineract_username", sa.Text),
        sa.Column("fineract_password_encrypted", sa.Text),
        sa.Column("fineract_filter_mode", sa.Text, nullable=False, server_default="status"),
        sa.Column("mpesa_base_url", sa.Text),
        sa.Column("mpesa_consumer_key", sa.Text),
        sa.Column("mpesa_consumer_secret_encrypted", sa.Text),
        sa.Column("mpesa_shortcode", sa.Text),
        sa.Column("mpesa_initiator_name", sa.Text),
        sa.Column("mpesa_security_credential_encrypted", sa.Text),
        sa.Column("currency", sa.Text, nullable=False, server_default="KES"),
        sa.Column("disbursement_charge_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("wallet_balance_minor", sa.BigInteger, nullable=False, server_default="0"),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_partners"),
        sa.CheckConstraint(
            "fineract_filter_mode IN ('status', 'sqlSearch')",
            name="ck_partners_fineract_filter_mode",
        ),
        sa.CheckConstraint(
            "disbursement_charge_minor >= 0", name="ck_partners_charge_not_negative"
        ),
        sa.CheckConstraint("wallet_balance_minor >= 0", name="ck_partners_wallet_not_negative"),
        schema=SCHEMA,
    )
    op.create_table(
        "loan_product_auto_disbursal_configs",
        sa.Column("partner_id", sa.Text, nullable=False),
        sa.Column("loan_product_id", sa.BigInteger, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("enabled_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint(
            "partner_id", "loan_product_id", name="pk_loan_product_auto_disbursal_configs"
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            [f"{SCHEMA}.partners.id"],
            name="fk_loan_product_auto_disbursal_configs_partner_id_partners",
            ondelete="CASCADE",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "loan_tracking",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("partner_id", sa.Text, nullable=False),
        sa.Column("fineract_loan_id", sa.BigInteger, nullable=False),
        sa.Column("account_no", sa.Text),
        sa.Column("external_id", sa.Text),
        sa.Column("client_id", sa.BigInteger),
        sa.Column("client_name", sa.Text),
        sa.Column("loan_product_id", sa.BigInteger),
        sa.Column("product_name", sa.Text),
        sa.Column("status_id", sa.Integer, nullable=False),
        sa.Column("status_value", sa.Text),
        sa.Column("principal", sa.Numeric(24, 6), nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("approved_on", sa.Date),
        sa.Column("expected_disbursement_on", sa.Date),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("last_poll_attempt_id", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_loan_tracking"),
        sa.UniqueConstraint(
            "partner_id", "fineract_loan_id", name="uq_loan_tracking_partner_id_fineract_loan_id"
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], [f"{SCHEMA}.partners.id"], name="fk_loan_tracking_partner_id_partners"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_loan_tracking_first_seen_at", "loan_tracking", ["first_seen_at"], schema=SCHEMA
    )
    op.create_table(
        "poll_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("partner_id", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("ok", sa.Boolean),
        sa.Column("loans_seen", sa.Integer),
        sa.Column("new_loans", sa.Integer),
        sa.Column("pages", sa.Integer),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_poll_attempts"),
        sa.ForeignKeyConstraint(
            ["partner_id"], [f"{SCHEMA}.partners.id"], name="fk_poll_attempts_partner_id_partners"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_poll_attempts_partner_id_started_at",
        "poll_attempts",
        ["partner_id", "started_at"],
        schema=SCHEMA,
    )
    op.create_index("ix_poll_attempts_started_at", "poll_attempts", ["started_at"], schema=SCHEMA)
    op.create_table(
        "disbursement_requests",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("partner_id", sa.Text, nullable=False),
        sa.Column("fineract_loan_id", sa.BigInteger, nullable=False),
        sa.Column("tranche", sa.Integer, nullable=False, server_default="1"),
        sa.Column("loan_tracking_id", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("phone_raw", sa.Text),
        sa.Column("phone", sa.Text),
        sa.Column("charge_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("attempt_started_at", sa.DateTime(timezone=True)),
        sa.Column("originator_conversation_id", sa.Text),
        sa.Column("conversation_id", sa.Text),
        sa.Column("mpesa_transaction_id", sa.Text),
        sa.Column("result_code", sa.Text),
        sa.Column("result_desc", sa.Text),
        sa.Column("failure_reason", sa.Text),
        sa.Column("retryable", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("submitted_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("status_query_conversation_id", sa.Text),
        sa.Column("status_queries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_status_query_at", sa.DateTime(timezone=True)),
        sa.Column("fineract_recorded_at", sa.DateTime(timezone=True)),
        sa.Column("fineract_transaction_id", sa.BigInteger),
        sa.Column("fineract_error", sa.Text),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_disbursement_requests"),
        sa.UniqueConstraint(
            "partner_id",
            "fineract_loan_id",
            "tranche",
            name="uq_disbursement_requests_partner_id_fineract_loan_id_tranche",
        ),
        sa.UniqueConstraint(
            "originator_conversation_id",
            name="uq_disbursement_requests_originator_conversation_id",
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            [f"{SCHEMA}.partners.id"],
            name="fk_disbursement_requests_partner_id_partners",
        ),
        sa.ForeignKeyConstraint(
            ["loan_tracking_id"],
            [f"{SCHEMA}.loan_tracking.id"],
            name="fk_disbursement_requests_loan_tracking_id_loan_tracking",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'submitted', 'succeeded', 'failed', 'unknown')",
            name="ck_disbursement_requests_status",
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_disbursement_requests_amount_positive"),
        sa.CheckConstraint(
            "status <> 'succeeded' OR mpesa_transaction_id IS NOT NULL",
            name="ck_disbursement_requests_succeeded_has_transaction",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_disbursement_requests_open",
        "disbursement_requests",
        ["status", "next_attempt_at"],
        postgresql_where=sa.text("status IN ('pending', 'submitted', 'unknown', 'failed')"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_disbursement_requests_status_query_conversation_id",
        "disbursement_requests",
        ["status_query_conversation_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("disbursement_requests", schema=SCHEMA)
    op.drop_table("poll_attempts", schema=SCHEMA)
    op.drop_table("loan_tracking", schema=SCHEMA)
    op.drop_table("loan_product_auto_disbursal_configs", schema=SCHEMA)
    op.drop_table("partners", schema=SCHEMA)
