"""Alert incidents: one open incident per condition key, so a condition that keeps failing
alerts when it starts (and at a reminder interval) and once more when it clears.

Revision ID: 0010_alert_incidents
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_alert_incidents"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

SCHEMA = "lending"


def upgrade() -> None:
    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("last_text", sa.Text, nullable=False),
        sa.Column("observations", sa.Integer, nullable=False, server_default="1"),
        sa.Column(
            "opened_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
        sa.Column("last_notified_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_alert_incidents_open_key",
        "alert_incidents",
        ["key"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("alert_incidents", schema=SCHEMA)
