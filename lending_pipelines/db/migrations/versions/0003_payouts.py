"""Creator payouts (workflow 3): creators, token ledger, withdrawal requests, payout evaluations,
batches, items and chunks, the shared rate-limit slots, and the analysts' views.

Revision ID: 0003_payouts
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0003_payouts"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
FALSE = sa.text("false")
SCHEMA = "lending"
TZ = sa.DateTime(timezone=True)

# Kept in step with lending_pipelines.db.payouts.VIEWS (a migration must not import app code
# whose later versions could change an old migration's meaning).
VIEWS = {
    "payout_batch_summary": """
        SELECT b.payout_date, b.status, b.currency, b.batch_hash,
               count(i.id) AS items,
               count(i.id) FILTER (WHERE i.status = 'paid') AS paid,
               count(i.id) FILTER (WHERE i.status = 'failed') AS failed,
               count(i.id) FILTER (WHERE i.status IN ('pending', 'processing')) AS open,
               coalesce(sum(i.amount_minor), 0) AS amount_minor,
               coalesce(sum(i.amount_minor) FILTER (WHERE i.status = 'paid'), 0)
                   AS paid_amount_minor,
               coalesce(sum(i.amount_minor) FILTER (WHERE i.status = 'failed'), 0)
                   AS failed_amount_minor,
               b.created_at, b.completed_at
        FROM lending.payout_batches b
        LEFT JOIN lending.payout_items i ON i.batch_id = b.id
        GROUP BY b.id
    """,
    "creator_payout_history": """
        SELECT c.id AS creator_id, c.external_ref, c.display_name, b.payout_date,
               i.idempotency_key, i.tokens, i.amount_minor, i.currency, i.status,
               i.stripe_transfer_id, i.destination_account, i.error_kind, i.error_message,
               i.attempts, i.paid_at
        FROM lending.payout_items i
        JOIN lending.payout_batches b ON b.id = i.batch_id
        JOIN lending.creators c ON c.id = i.creator_id
    """,
    "creator_token_balances": """
        SELECT c.id AS creator_id, c.external_ref, c.kyc_status, c.stripe_account_id,
               c.payouts_enabled,
               coalesce(sum(le.tokens), 0) AS balance_tokens,
               coalesce(sum(le.tokens) FILTER (WHERE le.tokens < 0 OR le.available_at <= now()),
                        0) AS available_tokens,
               coalesce(sum(le.tokens) FILTER (WHERE le.tokens > 0 AND le.available_at > now()),
                        0) AS held_tokens,
               coalesce(sum(le.tokens) FILTER (WHERE le.entry_type = 'earning'), 0)
                   AS earned_tokens,
               coalesce(-sum(le.tokens) FILTER (WHERE le.entry_type = 'withdrawal_completed'), 0)
                   AS withdrawn_tokens,
               coalesce(-sum(le.tokens) FILTER (WHERE le.entry_type = 'chargeback'), 0)
                   AS chargeback_tokens
        FROM lending.creators c
        LEFT JOIN lending.ledger_entries le ON le.creator_id = c.id
        GROUP BY c.id
    """,
}


def upgrade() -> None:
    op.create_table(
        "creators",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("external_ref", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("kyc_status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("stripe_account_id", sa.Text),
        sa.Column("payouts_enabled", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("transfers_capability", sa.Text),
        sa.Column("account_requirements_due", JSONB),
        sa.Column("account_disabled_reason", sa.Text),
        sa.Column("account_checked_at", TZ),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_creators"),
        sa.UniqueConstraint("external_ref", name="uq_creators_external_ref"),
        sa.UniqueConstraint("stripe_account_id", name="uq_creators_stripe_account_id"),
        sa.CheckConstraint(
            "kyc_status IN ('pending', 'verified', 'rejected')", name="ck_creators_kyc_status"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "payout_batches",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("payout_date", sa.Date, nullable=False),
        sa.Column("batch_hash", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="processing"),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("token_rate", sa.Numeric(18, 8), nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pending_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("paid_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("paid_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_by_run_id", sa.Text),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.Column("completed_at", TZ),
        sa.PrimaryKeyConstraint("id", name="pk_payout_batches"),
        sa.UniqueConstraint("payout_date", name="uq_payout_batches_payout_date"),
        sa.UniqueConstraint("batch_hash", name="uq_payout_batches_batch_hash"),
        sa.CheckConstraint(
            "status IN ('processing', 'completed', 'completed_with_failures')",
            name="ck_payout_batches_status",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "payout_items",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("creator_id", sa.BigInteger, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("chunk_no", sa.Integer, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("destination_account", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("key_generation", sa.Integer, nullable=False, server_default="1"),
        sa.Column("stripe_transfer_id", sa.Text),
        sa.Column("error_kind", sa.Text),
        sa.Column("error_code", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("retryable", sa.Boolean),
        sa.Column("outcome_unknown", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("error_replayed", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("claimed_by", sa.Text),
        sa.Column("claimed_at", TZ),
        sa.Column("last_attempt_at", TZ),
        sa.Column("paid_at", TZ),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_payout_items"),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            [f"{SCHEMA}.payout_batches.id"],
            name="fk_payout_items_batch_id_payout_batches",
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"], [f"{SCHEMA}.creators.id"], name="fk_payout_items_creator_id_creators"
        ),
        sa.UniqueConstraint("idempotency_key", name="uq_payout_items_idempotency_key"),
        sa.UniqueConstraint("batch_id", "creator_id", name="uq_payout_items_batch_id_creator_id"),
        sa.UniqueConstraint("stripe_transfer_id", name="uq_payout_items_stripe_transfer_id"),
        sa.CheckConstraint("tokens > 0", name="ck_payout_items_tokens_positive"),
        sa.CheckConstraint("amount_minor > 0", name="ck_payout_items_amount_positive"),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'paid', 'failed')", name="ck_payout_items_status"
        ),
        sa.CheckConstraint(
            "status <> 'paid' OR (stripe_transfer_id IS NOT NULL AND paid_at IS NOT NULL)",
            name="ck_payout_items_paid_has_transfer",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_payout_items_batch_id_chunk_no",
        "payout_items",
        ["batch_id", "chunk_no"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_payout_items_open_by_creator",
        "payout_items",
        ["creator_id"],
        postgresql_where=sa.text("status IN ('pending', 'processing', 'failed')"),
        schema=SCHEMA,
    )
    op.create_table(
        "payout_chunks",
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("chunk_no", sa.Integer, nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("passes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_run_id", sa.Text),
        sa.Column("started_at", TZ),
        sa.Column("finished_at", TZ),
        sa.PrimaryKeyConstraint("batch_id", "chunk_no", name="pk_payout_chunks"),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            [f"{SCHEMA}.payout_batches.id"],
            name="fk_payout_chunks_batch_id_payout_batches",
        ),
        sa.CheckConstraint("status IN ('pending', 'done')", name="ck_payout_chunks_status"),
        schema=SCHEMA,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("creator_id", sa.BigInteger, nullable=False),
        sa.Column("entry_type", sa.Text, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=NOW),
        sa.Column("available_at", TZ, nullable=False),
        sa.Column("payout_item_id", sa.BigInteger),
        sa.Column("reference", sa.Text),
        sa.Column("description", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.ForeignKeyConstraint(
            ["creator_id"], [f"{SCHEMA}.creators.id"], name="fk_ledger_entries_creator_id_creators"
        ),
        sa.ForeignKeyConstraint(
            ["payout_item_id"],
            [f"{SCHEMA}.payout_items.id"],
            name="fk_ledger_entries_payout_item_id_payout_items",
        ),
        sa.UniqueConstraint("payout_item_id", name="uq_ledger_entries_payout_item_id"),
        sa.CheckConstraint(
            "entry_type IN ('earning', 'withdrawal_completed', 'chargeback', 'adjustment')",
            name="ck_ledger_entries_entry_type",
        ),
        sa.CheckConstraint(
            "(entry_type = 'earning' AND tokens > 0) "
            "OR (entry_type IN ('withdrawal_completed', 'chargeback') AND tokens < 0) "
            "OR (entry_type = 'adjustment' AND tokens <> 0)",
            name="ck_ledger_entries_tokens_sign",
        ),
        sa.CheckConstraint(
            "payout_item_id IS NULL OR entry_type = 'withdrawal_completed'",
            name="ck_ledger_entries_item_withdrawal",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_ledger_entries_creator_id_available_at",
        "ledger_entries",
        ["creator_id", "available_at"],
        schema=SCHEMA,
    )
    op.create_table(
        "withdrawal_requests",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("creator_id", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("payout_item_id", sa.BigInteger),
        sa.Column("requested_at", TZ, nullable=False, server_default=NOW),
        sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_withdrawal_requests"),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            [f"{SCHEMA}.creators.id"],
            name="fk_withdrawal_requests_creator_id_creators",
        ),
        sa.ForeignKeyConstraint(
            ["payout_item_id"],
            [f"{SCHEMA}.payout_items.id"],
            name="fk_withdrawal_requests_payout_item_id_payout_items",
        ),
        sa.CheckConstraint("tokens > 0", name="ck_withdrawal_requests_tokens_positive"),
        sa.CheckConstraint(
            "status IN ('pending', 'in_batch', 'completed', 'cancelled')",
            name="ck_withdrawal_requests_status",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_withdrawal_requests_pending",
        "withdrawal_requests",
        ["creator_id"],
        postgresql_where=sa.text("status = 'pending'"),
        schema=SCHEMA,
    )
    op.create_table(
        "payout_evaluations",
        sa.Column("payout_date", sa.Date, nullable=False),
        sa.Column("as_of", TZ, nullable=False),
        sa.Column("minimum_tokens", sa.BigInteger, nullable=False),
        sa.Column("token_rate", sa.Numeric(18, 8), nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("outcomes", JSONB, nullable=False),
        sa.Column("evaluated_at", TZ, nullable=False, server_default=NOW),
        sa.Column("run_id", sa.Text),
        sa.PrimaryKeyConstraint("payout_date", name="pk_payout_evaluations"),
        schema=SCHEMA,
    )
    op.create_table(
        "payout_eligibility",
        sa.Column("payout_date", sa.Date, nullable=False),
        sa.Column("creator_id", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("available_tokens", sa.BigInteger, nullable=False),
        sa.Column("held_tokens", sa.BigInteger, nullable=False),
        sa.Column("requested_tokens", sa.BigInteger),
        sa.Column("payout_tokens", sa.BigInteger, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("destination_account", sa.Text),
        sa.Column(
            "withdrawal_request_ids", ARRAY(sa.BigInteger), nullable=False, server_default="{}"
        ),
        sa.PrimaryKeyConstraint("payout_date", "creator_id", name="pk_payout_eligibility"),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            [f"{SCHEMA}.creators.id"],
            name="fk_payout_eligibility_creator_id_creators",
        ),
        sa.CheckConstraint(
            "reason IS NOT NULL OR (payout_tokens > 0 AND amount_minor > 0 "
            "AND destination_account IS NOT NULL)",
            name="ck_payout_eligibility_eligible_is_payable",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "rate_limits",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("next_slot_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_rate_limits"),
        schema=SCHEMA,
    )
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {SCHEMA}.{name} AS {body}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {SCHEMA}.{name}")
    op.drop_table("rate_limits", schema=SCHEMA)
    op.drop_table("payout_eligibility", schema=SCHEMA)
    op.drop_table("payout_evaluations", schema=SCHEMA)
    op.drop_index("ix_withdrawal_requests_pending", "withdrawal_requests", schema=SCHEMA)
    op.drop_table("withdrawal_requests", schema=SCHEMA)
    op.drop_index("ix_ledger_entries_creator_id_available_at", "ledger_entries", schema=SCHEMA)
    op.drop_table("ledger_entries", schema=SCHEMA)
    op.drop_table("payout_chunks", schema=SCHEMA)
    op.drop_index("ix_payout_items_open_by_creator", "payout_items", schema=SCHEMA)
    op.drop_index("ix_payout_items_batch_id_chunk_no", "payout_items", schema=SCHEMA)
    op.drop_table("payout_items", schema=SCHEMA)
    op.drop_table("payout_batches", schema=SCHEMA)
    op.drop_table("creators", schema=SCHEMA)
