"""What keeps DPD inside its time at 1,000,000 loans (bench/collections.py), pinned on a small
book: the amounts stay bigint through the DPD statement."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from lending_pipelines.db.collections.dpd import DPD_AS_OF
from tests.collections_book import add_loan, pay

D = date(2026, 10, 31)


def test_dpd_amounts_are_summed_as_bigint_even_with_payments_dated_after_the_day(db):
    """A payment dated after the business day brings the allocations' sum into the statement;
    PostgreSQL's sum() of bigint is numeric, and a numeric paid amount made every aggregate of
    the book numeric (at 1,000,000 loans a 512 MB hash that spilled to disk; 164 MB now)."""
    with db.begin() as conn:
        loan = add_loan(conn, [(D - timedelta(days=40), 500_00), (D + timedelta(days=20), 500_00)])
        pay(conn, loan, 300_00, D + timedelta(days=2))
    with db.connect() as conn:
        row = conn.execute(
            sa.text(
                f"SELECT pg_typeof(outstanding_minor)::text AS outstanding, "
                f"pg_typeof(overdue_minor)::text AS overdue, outstanding_minor, overdue_minor, dpd "
                f"FROM ({DPD_AS_OF}) d WHERE loan_id = :loan"
            ),
            {"day": D, "loan": loan},
        ).one()
    assert (row.outstanding, row.overdue) == ("bigint", "bigint")
    assert (row.outstanding_minor, row.overdue_minor, row.dpd) == (1000_00, 500_00, 40)
