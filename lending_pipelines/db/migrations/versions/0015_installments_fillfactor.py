"""Room on each installments page for posting's update of the paid cache to stay heap-only (HOT).

Posting a payment updates `amount_paid_minor` and `paid_on`, which no index covers; PostgreSQL
keeps such an update on the row's own page, without a new entry in each of the table's three
indexes, only when the page has room. Pages filled to 100 % (the default, and what a bulk load
of a book produces) give every update a new row version elsewhere and three index insertions at
random places: at 1,000,000 loans most of a 100,000-row payment file's time. A fillfactor of 90
leaves room for several updates per page (collection_loans has 70 for the daily DPD update).
It applies to pages written from now on; an existing book gains it as its pages are rewritten.

Revision ID: 0015_installments_fillfactor
Revises: 0014_collections
"""

from alembic import op

revision = "0015_installments_fillfactor"
down_revision = "0014_collections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE lending.installments SET (fillfactor = 90)")


def downgrade() -> None:
    op.execute("ALTER TABLE lending.installments RESET (fillfactor)")
