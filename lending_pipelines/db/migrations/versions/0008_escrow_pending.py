"""Auto-deduct: a retailer's debt is never repaid below zero, and a retailer has at most one
repayment in flight (pending) at a time, whatever its business date.

- `retailer_debts_not_repaid_below_zero`: a BEFORE UPDATE trigger refusing any decrease of
  `outstanding_amount` that lands below zero (a negative debt that arrives from upstream is left
  for auto-deduct to report as bad data; only reductions are refused).
- `uq_repayments_one_pending_per_retailer`: a partial unique index, so two runs (two business
  days of the asset running at once) can never both have an unsettled transfer for the same
  wallet.

Revision ID: 0008_escrow_pending
Revises: 0004_escrow
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_escrow_pending"
down_revision = "0004_escrow"
branch_labels = None
depends_on = None

SCHEMA = "lending"

NOT_BELOW_ZERO = """
CREATE FUNCTION lending.retailer_debt_not_repaid_below_zero() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.outstanding_amount < 0 AND NEW.outstanding_amount < OLD.outstanding_amount THEN
        RAISE EXCEPTION
            'retailer_debts % (%): outstanding_amount % -> % would go below zero',
            OLD.retailer_id, OLD.currency, OLD.outstanding_amount, NEW.outstanding_amount
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER retailer_debts_not_repaid_below_zero
    BEFORE UPDATE OF outstanding_amount ON lending.retailer_debts
    FOR EACH ROW EXECUTE FUNCTION lending.retailer_debt_not_repaid_below_zero();
"""


def _refuse_several_pending() -> None:
    """The unique index cannot be built while a retailer has two pending repayments (left by
    crashes on two days before this version): name them instead of failing obscurely."""
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT retailer_id, string_agg(CAST(business_date AS text), ', ' "
                "ORDER BY business_date) FROM lending.repayments WHERE status = 'pending' "
                "GROUP BY retailer_id, currency HAVING count(*) > 1 ORDER BY retailer_id"
            )
        )
        .all()
    )
    if rows:
        listed = "; ".join(f"{retailer}: {days}" for retailer, days in rows)
        raise RuntimeError(
            "repayments: several pending repayments per retailer "
            f"({listed}); re-run auto_deductions for those dates to settle them, then upgrade"
        )


def upgrade() -> None:
    _refuse_several_pending()
    op.execute(NOT_BELOW_ZERO)
    op.create_index(
        "uq_repayments_one_pending_per_retailer",
        "repayments",
        ["retailer_id", "currency"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("uq_repayments_one_pending_per_retailer", "repayments", schema=SCHEMA)
    op.execute(
        "DROP TRIGGER retailer_debts_not_repaid_below_zero ON lending.retailer_debts;"
        "DROP FUNCTION lending.retailer_debt_not_repaid_below_zero();"
    )
