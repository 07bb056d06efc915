"""The access paths that keep DPD and payment posting inside their time at 1,000,000 loans
(bench/collections.py), pinned on a small book: amounts stay bigint through the DPD statement,
and the paid-cache update reads only the planned installments, by row address."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from lending_pipelines.db.collections import posting
from lending_pipelines.db.collections.dpd import DPD_AS_OF
from lending_pipelines.db.collections.payments import lock_posting
from lending_pipelines.domain.collections_payments import AcceptedRow
from tests.collections_book import add_loan, next_utr, pay

D = date(2026, 10, 31)


def test_dpd_amounts_are_summed_as_bigint_even_with_payments_dated_after_the_day(db):
    """A payment dated after the business day brings the allocations' sum into the statement;
    PostgreSQL's sum() of bigint is numeric, and a numeric paid amount made every aggregate of
    the book numeric (twice the hash memory: at 1,000,000 loans it spilled to disk)."""
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


def test_paid_cache_update_reads_only_the_planned_installments_by_row_address(db, monkeypatch):
    """The update of the installments' paid cache goes straight to the rows the plan read (a TID
    scan of their addresses), never through a scan of the whole book's installments (a book of
    a few hundred loans: below a handful of pages the planner rightly prefers reading it all)."""
    with db.begin() as conn:
        loans = list(
            conn.execute(
                sa.text(
                    "INSERT INTO lending.collection_loans "
                    "(borrower_name, phone, principal_minor, opened_on) "
                    "SELECT 'B' || g, '+919800000001', 120000, :opened "
                    "FROM generate_series(1, 400) g RETURNING id"
                ),
                {"opened": D},
            ).scalars()
        )
        conn.execute(
            sa.text(
                "INSERT INTO lending.installments (loan_id, number, due_date, amount_due_minor) "
                "SELECT l, n, CAST(:opened AS date) + 30 * n, 100_00 "
                "FROM unnest(CAST(:loans AS bigint[])) l, generate_series(1, 12) n"
            ),
            {"opened": D, "loans": loans},
        )
        conn.exec_driver_sql("ANALYZE lending.installments")
    plans = []
    real_execute = sa.Connection.execute

    def explain_then_execute(conn, statement, *args, **kwargs):
        if statement is posting.UPDATE_PAID:
            plans.append(
                "\n".join(
                    real_execute(conn, sa.text(f"EXPLAIN {statement.text}"), *args, **kwargs)
                    .scalars()
                    .all()
                )
            )
        return real_execute(conn, statement, *args, **kwargs)

    monkeypatch.setattr(sa.Connection, "execute", explain_then_execute)
    rows = [AcceptedRow(n, next_utr(), loan, 150_00, D) for n, loan in enumerate(loans[:10], 1)]
    with db.begin() as conn:
        lock_posting(conn)
        posted = posting.post_payments(conn, rows, source="file", posted_by="t", run_id=None)
    monkeypatch.undo()

    assert posted.allocations == 20
    assert len(plans) == 1
    assert "Tid Scan on installments" in plans[0], plans[0]
    assert "Seq Scan on installments" not in plans[0], plans[0]
    with db.connect() as conn:
        paid = conn.execute(
            sa.text(
                "SELECT loan_id, sum(amount_paid_minor) FROM lending.installments "
                "WHERE amount_paid_minor > 0 GROUP BY loan_id ORDER BY loan_id"
            )
        ).all()
    assert [tuple(r) for r in paid] == [(loan, 150_00) for loan in sorted(loans[:10])]
