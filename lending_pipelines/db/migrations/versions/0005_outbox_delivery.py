"""Outbox delivery status: what the provider last reported about a sent message (Twilio status
callbacks `sent → delivered → read`, or `failed`/`undelivered`), when, and an index on the
provider's message id the callbacks are matched by.

Revision ID: 0005_outbox_delivery
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_outbox_delivery"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

SCHEMA = "lending"


def upgrade() -> None:
    op.add_column("outbox", sa.Column("delivery_status", sa.Text), schema=SCHEMA)
    op.add_column(
        "outbox", sa.Column("delivery_status_at", sa.DateTime(timezone=True)), schema=SCHEMA
    )
    op.create_index(
        "ix_outbox_provider_message_id", "outbox", ["provider_message_id"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_provider_message_id", "outbox", schema=SCHEMA)
    op.drop_column("outbox", "delivery_status_at", schema=SCHEMA)
    op.drop_column("outbox", "delivery_status", schema=SCHEMA)
