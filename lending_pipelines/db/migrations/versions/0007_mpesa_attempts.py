"""M-Pesa disbursements that trust only what Daraja confirms: one row per B2C attempt (its
OriginatorConversationID is never overwritten), one row per transaction-status query (the ids
of its acknowledgement authenticate its answer), row claims for submitters, result hints from
callbacks and a review flag for mismatches.

Requests that an older version left `pending` with a started attempt (sent or not, nobody
knows) become `unknown`: a status query settles them, never a blind resend. Successes not yet
recorded in Fineract and retryable failures, both taken from callbacks alone, are confirmed by
a status query before anything acts on them.

Revision ID: 0007_mpesa_attempts
Revises: 0002_loans
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_mpesa_attempts"
down_revision = "0002_loans"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
SCHEMA = "lending"
REQUEST_COLUMNS = [
    sa.Column("claimed_by_pid", sa.Integer),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("status_query_originator_id", sa.Text),
    sa.Column("last_status_query_error", sa.Text),
    sa.Column("result_hint_at", sa.DateTime(timezone=True)),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    sa.Column("needs_review", sa.Text),
]


def upgrade() -> None:
    for column in REQUEST_COLUMNS:
        op.add_column("disbursement_requests", column, schema=SCHEMA)
    op.create_table(
        "disbursement_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("originator_conversation_id", sa.Text, nullable=False),
        sa.Column("conversation_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("mpesa_transaction_id", sa.Text),
        sa.Column("result_code", sa.Text),
        sa.Column("not_found_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_not_found_at", sa.DateTime(timezone=True)),
        sa.Column("last_not_found_at", sa.DateTime(timezone=True)),
        sa.Column("resends", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_resent_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_disbursement_attempts"),
        sa.UniqueConstraint(
            "originator_conversation_id",
            name="uq_disbursement_attempts_originator_conversation_id",
        ),
        sa.UniqueConstraint(
            "request_id", "attempt", name="uq_disbursement_attempts_request_id_attempt"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            [f"{SCHEMA}.disbursement_requests.id"],
            name="fk_disbursement_attempts_request_id_disbursement_requests",
        ),
        sa.CheckConstraint(
            "status IN ('open', 'succeeded', 'failed')", name="ck_disbursement_attempts_status"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "disbursement_status_queries",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("originator_conversation_id", sa.Text, nullable=False),
        sa.Column("query_conversation_id", sa.Text, nullable=False),
        sa.Column("query_originator_id", sa.Text, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("answered_at", sa.DateTime(timezone=True)),
        sa.Column("verdict", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_disbursement_status_queries"),
        sa.UniqueConstraint(
            "query_conversation_id",
            name="uq_disbursement_status_queries_query_conversation_id",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            [f"{SCHEMA}.disbursement_requests.id"],
            name="fk_disbursement_status_queries_request_id_disbursement_requests",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_disbursement_status_queries_request_id",
        "disbursement_status_queries",
        ["request_id"],
        schema=SCHEMA,
    )
    # Outcomes an older version took from a callback alone, that still matter: a success not yet
    # recorded in Fineract, a retryable failure not yet retried. Both go back to `submitted` with
    # a hint, so a status query confirms them before Fineract or a new attempt id sees them.
    op.execute(
        f"""
        UPDATE {SCHEMA}.disbursement_requests SET status = 'submitted', resolved_at = NULL,
            result_hint_at = now(), retryable = false, failure_reason = NULL
        WHERE originator_conversation_id IS NOT NULL AND (
            (status = 'succeeded' AND fineract_recorded_at IS NULL)
            OR (status = 'failed' AND retryable AND result_code IS NOT NULL))
        """
    )
    # Keep the id of every attempt already made.
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.disbursement_attempts (request_id, attempt,
            originator_conversation_id, conversation_id, status, started_at, resolved_at,
            mpesa_transaction_id, result_code)
        SELECT id, GREATEST(attempts, 1), originator_conversation_id, conversation_id,
               CASE WHEN status IN ('succeeded', 'failed') THEN status ELSE 'open' END,
               COALESCE(attempt_started_at, created_at), resolved_at, mpesa_transaction_id,
               result_code
        FROM {SCHEMA}.disbursement_requests WHERE originator_conversation_id IS NOT NULL
        """
    )
    op.execute(
        f"UPDATE {SCHEMA}.disbursement_requests SET status = 'unknown', "
        "submitted_at = COALESCE(submitted_at, attempt_started_at) "
        "WHERE status = 'pending' AND attempt_started_at IS NOT NULL"
    )
    op.create_index(
        "ix_disbursement_attempts_request_id",
        "disbursement_attempts",
        ["request_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("disbursement_status_queries", schema=SCHEMA)
    op.drop_table("disbursement_attempts", schema=SCHEMA)
    for column in REQUEST_COLUMNS:
        op.drop_column("disbursement_requests", column.name, schema=SCHEMA)
