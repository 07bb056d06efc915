"""Creator payouts: drop the analysts' views the dbt models replaced.

`lending.payout_batch_summary` and `lending.creator_payout_history` duplicated the dbt models
`analytics.payout_batch_summary` and `analytics.creator_payout_history` (which also count
reversals and check the stored batch totals); nothing reads them. `creator_token_balances`
stays (it has no dbt model). The downgrade recreates both exactly as 0003_payouts did.

Revision ID: 0012_drop_payout_views
Revises: 0006_payouts_overlap
"""

from alembic import op

revision = "0012_drop_payout_views"
down_revision = "0006_payouts_overlap"
branch_labels = None
depends_on = None

SCHEMA = "lending"

# Copied from 0003_payouts (a migration must not import another one, nor app code).
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
}


def upgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {SCHEMA}.{name}")


def downgrade() -> None:
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {SCHEMA}.{name} AS {body}")
