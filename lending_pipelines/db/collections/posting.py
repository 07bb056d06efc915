"""Posting accepted payments set-based: the rows are staged by COPY into a temporary table, the
oldest-first allocation is computed in SQL with running sums, the installments' paid cache is
updated and the payments and their allocations are written in one statement. Nothing per row
comes back to Python but the overpaid payments.

The allocation is `domain.collections.allocate` applied payment by payment in (paid_on, row)
order, each payment seeing what the earlier ones of its loan left, written as intervals: per
loan, the open installments (due date, number, id) cover [0, total open) in running sums and the
payments (paid_on, row, file order) cover [0, total paid); a payment gives each installment the
overlap of the two intervals, and what lies beyond the total open is its overpayment.
`tests/integration/test_collections_payment_allocation_sql.py` pins the equivalence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain.collections_payments import AcceptedRow

STAGE = """
DROP TABLE IF EXISTS pg_temp.payment_batch, pg_temp.payment_plan;
CREATE TEMPORARY TABLE payment_batch (
    seq integer PRIMARY KEY,  -- position in the batch: the last tie-breaker, as a stable sort
    utr text NOT NULL,
    loan_id bigint NOT NULL,
    amount_minor bigint NOT NULL,
    paid_on date NOT NULL,
    row_number integer NOT NULL
) ON COMMIT DROP;
CREATE TEMPORARY TABLE payment_plan (
    seq integer NOT NULL,
    installment_id bigint NOT NULL,
    installment_ctid tid NOT NULL,  -- where the row was read: the UPDATE goes straight there
    paid_before_minor bigint NOT NULL,  -- its paid amount when the plan was made
    amount_minor bigint NOT NULL
) ON COMMIT DROP;
SET LOCAL work_mem = '64MB'  -- the window sorts of 100,000s of rows stay in memory
"""

COPY_BATCH = "COPY payment_batch (seq, utr, loan_id, amount_minor, paid_on, row_number) FROM STDIN"

# The open installments of the batch's loans are read through the loan index in loan order (the
# schedule of a loan lies together), not by a scan of the whole book. They are not locked here:
# locking every open installment of 100,000 loans wrote to ~450,000 rows only to protect the
# third of them that get money. The plan keeps the paid amount and row address it read, and
# the UPDATE changes a row only if both are still what the plan saw (it locks the rows it
# changes); any other outcome rolls the whole posting back.
PLAN = sa.text(
    """
    INSERT INTO payment_plan
        (seq, installment_id, installment_ctid, paid_before_minor, amount_minor)
    WITH open_installments AS (
        SELECT i.id, i.ctid AS row_address, i.loan_id, i.number, i.due_date,
               i.amount_paid_minor AS paid_minor,
               i.amount_due_minor - i.amount_paid_minor AS open_minor
        FROM lending.installments i
        WHERE i.loan_id = ANY(ARRAY(SELECT DISTINCT loan_id FROM payment_batch ORDER BY 1))
          AND i.amount_paid_minor < i.amount_due_minor
    ), installment_spans AS (
        SELECT id, row_address, loan_id, paid_minor, open_minor,
               CAST(sum(open_minor) OVER (PARTITION BY loan_id ORDER BY due_date, number, id
                                          ROWS UNBOUNDED PRECEDING) AS bigint) AS through_minor
        FROM open_installments
    ), payment_spans AS (
        SELECT seq, loan_id, amount_minor,
               CAST(sum(amount_minor) OVER (PARTITION BY loan_id ORDER BY paid_on, row_number, seq
                                            ROWS UNBOUNDED PRECEDING) AS bigint) AS through_minor
        FROM payment_batch
    )
    SELECT p.seq, i.id, i.row_address, i.paid_minor,
           least(p.through_minor, i.through_minor)
               - greatest(p.through_minor - p.amount_minor, i.through_minor - i.open_minor)
    FROM payment_spans p
    JOIN installment_spans i
      ON i.loan_id = p.loan_id
     AND i.through_minor - i.open_minor < p.through_minor
     AND i.through_minor > p.through_minor - p.amount_minor
    """
)

# Payments are numbered and written in loan order, and within a loan in the order they were
# allocated (paid date, row): the key checks of 100,000 payments and their allocations then walk
# the loans', payments' and installments' indexes in order instead of at random (a payment's
# place in its file is its row_number). What no installment took is its overpayment.
WRITE = sa.text(
    """
    WITH allocated AS (
        SELECT seq, CAST(sum(amount_minor) AS bigint) AS amount_minor
        FROM payment_plan GROUP BY seq
    ), numbered AS MATERIALIZED (
        SELECT nextval(pg_get_serial_sequence('lending.payments', 'id')) AS id, ordered.*
        FROM (
            SELECT b.seq, b.utr, b.loan_id, b.amount_minor, b.paid_on, b.row_number,
                   b.amount_minor - coalesce(a.amount_minor, 0) AS overpaid_minor
            FROM payment_batch b LEFT JOIN allocated a ON a.seq = b.seq
            ORDER BY b.loan_id, b.paid_on, b.row_number, b.seq
        ) ordered
    ), inserted AS (
        INSERT INTO lending.payments (id, utr, loan_id, amount_minor, paid_on, source, file_id,
                                      row_number, overpaid_minor, posted_by, run_id)
        SELECT id, utr, loan_id, amount_minor, paid_on, :source, :file_id,
               CASE WHEN CAST(:file_id AS bigint) IS NOT NULL THEN row_number END,
               overpaid_minor, :posted_by, :run_id
        FROM numbered
        ORDER BY id
    ), allocations AS (
        INSERT INTO lending.payment_allocations
            (payment_id, installment_id, amount_minor, paid_on)
        SELECT n.id, plan.installment_id, plan.amount_minor, n.paid_on
        FROM numbered n JOIN payment_plan plan ON plan.seq = n.seq
        ORDER BY plan.installment_id
    )
    SELECT id, utr, loan_id, overpaid_minor FROM numbered WHERE overpaid_minor > 0 ORDER BY id
    """
)

UPDATE_PAID = sa.text(
    """
    UPDATE lending.installments i
    SET amount_paid_minor = i.amount_paid_minor + s.amount_minor,
        paid_on = greatest(i.paid_on, s.paid_on)
    FROM (
        SELECT plan.installment_id, plan.installment_ctid, plan.paid_before_minor,
               sum(plan.amount_minor) AS amount_minor, max(b.paid_on) AS paid_on
        FROM payment_plan plan JOIN payment_batch b ON b.seq = plan.seq
        GROUP BY plan.installment_id, plan.installment_ctid, plan.paid_before_minor
    ) s
    WHERE i.ctid = s.installment_ctid AND i.id = s.installment_id
      AND i.amount_paid_minor = s.paid_before_minor
    """
)


class StalePlanError(RuntimeError):
    """An allocated installment changed between planning and writing (the posting rolls back)."""


@dataclass
class Posted:
    payments: int = 0
    amount_minor: int = 0
    allocations: int = 0
    overpaid: list[dict] = field(default_factory=list)

    @property
    def overpaid_minor(self) -> int:
        return sum(o["overpaid_minor"] for o in self.overpaid)


def _copy_text(rows: Sequence[AcceptedRow]) -> str:
    """COPY text format. Every value is an int, a date or a validated UTR (letters and digits):
    nothing to escape, which the check below makes sure of."""
    lines = []
    for seq, row in enumerate(rows):
        if not row.utr.isalnum():
            raise ValueError(f"utr {row.utr!r} of row {row.row_number} is not letters and digits")
        lines.append(
            f"{seq}\t{row.utr}\t{int(row.loan_id)}\t{int(row.amount_minor)}\t"
            f"{row.paid_on.isoformat()}\t{int(row.row_number)}\n"
        )
    return "".join(lines)


def post_payments(
    conn: Connection,
    rows: Sequence[AcceptedRow],
    *,
    source: str,
    posted_by: str,
    run_id: str | None,
    file_id: int | None = None,
) -> Posted:
    """Record `rows` (validated, UTRs not yet recorded) and allocate each to its loan's open
    installments, oldest first, in payment date order; an overpayment is stored on the payment.
    The same few statements whatever the number of rows. Call inside the posting transaction."""
    posted = Posted()
    if not rows:
        return posted
    conn.exec_driver_sql(STAGE)
    with conn.connection.driver_connection.cursor() as cursor:
        with cursor.copy(COPY_BATCH) as copy:
            copy.write(_copy_text(rows))
    conn.exec_driver_sql("ANALYZE payment_batch")
    conn.execute(PLAN)
    allocations, installments = conn.exec_driver_sql(
        "SELECT count(*), count(DISTINCT installment_id) FROM payment_plan"
    ).one()
    # The paid cache first: the allocations' key checks then find rows this transaction has
    # already written, and a stale plan is refused before anything else is written.
    updated = conn.execute(UPDATE_PAID).rowcount
    if updated != installments:  # one changed since the plan read it: roll everything back
        raise StalePlanError(
            f"installments updated is {updated}, expected {installments} (the allocated ones): "
            "an installment changed while the payments were planned; nothing was posted"
        )
    overpaid = conn.execute(
        WRITE, {"source": source, "file_id": file_id, "posted_by": posted_by, "run_id": run_id}
    ).all()
    posted.payments = len(rows)
    posted.amount_minor = sum(row.amount_minor for row in rows)
    posted.allocations = allocations
    posted.overpaid = [
        {"payment_id": payment_id, "utr": utr, "loan_id": loan_id, "overpaid_minor": amount}
        for payment_id, utr, loan_id, amount in overpaid
    ]
    return posted
