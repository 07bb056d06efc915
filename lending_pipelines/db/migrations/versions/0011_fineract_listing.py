"""Fineract listing quality: loans that could not be parsed are kept as bad records (partner,
loan id, field, value) instead of failing the partner's poll, and each poll attempt records the
server's totalFilteredRecords next to what its pages really held.

Revision ID: 0011_fineract_listing
Revises: 0002_loans
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_fineract_listing"
down_revision = "0002_loans"
branch_labels = None
depends_on = None

SCHEMA = "lending"


def upgrade() -> None:
    op.add_column("poll_attempts", sa.Column("total_reported", sa.Integer), schema=SCHEMA)
    op.add_column("poll_attempts", sa.Column("records_received", sa.Integer), schema=SCHEMA)
    op.add_column("poll_attempts", sa.Column("bad_records", sa.Integer), schema=SCHEMA)
    op.create_table(
        "fineract_bad_records",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("partner_id", sa.Text, sa.ForeignKey(f"{SCHEMA}.partners.id"), nullable=False),
        sa.Column("fineract_loan_id", sa.BigInteger),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("expected", sa.Text, nullable=False),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("times_seen", sa.Integer, nullable=False, server_default="1"),
        sa.Column("last_poll_attempt_id", sa.BigInteger),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.execute(
        f"CREATE UNIQUE INDEX uq_fineract_bad_records_loan_field ON {SCHEMA}.fineract_bad_records "
        "(partner_id, (coalesce(fineract_loan_id, -1)), field)"
    )


def downgrade() -> None:
    op.drop_table("fineract_bad_records", schema=SCHEMA)
    op.drop_column("poll_attempts", "bad_records", schema=SCHEMA)
    op.drop_column("poll_attempts", "records_received", schema=SCHEMA)
    op.drop_column("poll_attempts", "total_reported", schema=SCHEMA)
