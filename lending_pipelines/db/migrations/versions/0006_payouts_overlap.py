"""Creator payouts: overlapping payout dates, key age, reversals, chunk leases.

* payout_items.key_sent_at: when the item's current idempotency-key generation was first sent
  to Stripe (Stripe prunes keys 24 h after first use, not after the last attempt);
* payout_items.amount_reversed_minor / reversed_at and the `reversed` status: a transfer
  reversed at Stripe is no longer counted as paid;
* payout_chunks.leased_by / lease_until: a worker's claim on a chunk is a committed lease, not a
  transaction held open across Stripe calls;
* creators.account_event_at: when the last verified `account.updated` event was applied;
* a unique index on reversal ledger references, so a reversal is written once.

Revision ID: 0006_payouts_overlap
Revises: 0003_payouts
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_payouts_overlap"
down_revision = "0003_payouts"
branch_labels = None
depends_on = None

SCHEMA = "lending"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("payout_items", sa.Column("key_sent_at", TZ), schema=SCHEMA)
    op.add_column(
        "payout_items",
        sa.Column("amount_reversed_minor", sa.BigInteger, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.add_column("payout_items", sa.Column("reversed_at", TZ), schema=SCHEMA)
    # The first attempt of the current generation is the best record older rows have.
    op.execute(
        "UPDATE lending.payout_items SET key_sent_at = claimed_at "
        "WHERE claimed_at IS NOT NULL AND status <> 'pending'"
    )
    # 0003 created its check constraints through the naming convention twice over
    op.drop_constraint(
        op.f("ck_payout_items_ck_payout_items_status"), "payout_items", schema=SCHEMA
    )
    op.create_check_constraint(
        op.f("ck_payout_items_status"),
        "payout_items",
        "status IN ('pending', 'processing', 'paid', 'failed', 'reversed')",
        schema=SCHEMA,
    )
    op.create_check_constraint(
        op.f("ck_payout_items_reversed_has_transfer"),
        "payout_items",
        "status <> 'reversed' OR (stripe_transfer_id IS NOT NULL AND amount_reversed_minor > 0)",
        schema=SCHEMA,
    )
    op.add_column("payout_chunks", sa.Column("leased_by", sa.Text), schema=SCHEMA)
    op.add_column("payout_chunks", sa.Column("lease_until", TZ), schema=SCHEMA)
    op.add_column("creators", sa.Column("account_event_at", TZ), schema=SCHEMA)
    op.create_index(
        "ix_ledger_entries_reversal_reference",
        "ledger_entries",
        ["reference"],
        unique=True,
        postgresql_where=sa.text("reference LIKE 'reversal:%'"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_reversal_reference", "ledger_entries", schema=SCHEMA)
    op.drop_column("creators", "account_event_at", schema=SCHEMA)
    op.drop_column("payout_chunks", "lease_until", schema=SCHEMA)
    op.drop_column("payout_chunks", "leased_by", schema=SCHEMA)
    op.drop_constraint(op.f("ck_payout_items_reversed_has_transfer"), "payout_items", schema=SCHEMA)
    op.drop_constraint(op.f("ck_payout_items_status"), "payout_items", schema=SCHEMA)
    op.execute("UPDATE lending.payout_items SET status = 'paid' WHERE status = 'reversed'")
    op.create_check_constraint(
        op.f("ck_payout_items_ck_payout_items_status"),
        "payout_items",
        "status IN ('pending', 'processing', 'paid', 'failed')",
        schema=SCHEMA,
    )
    op.drop_column("payout_items", "reversed_at", schema=SCHEMA)
    op.drop_column("payout_items", "amount_reversed_minor", schema=SCHEMA)
    op.drop_column("payout_items", "key_sent_at", schema=SCHEMA)
