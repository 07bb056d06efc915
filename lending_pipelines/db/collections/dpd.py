"""Days past due for the whole book, one statement per business day, and its history.

`DPD_AS_OF` computes, for every ACTIVE or LEGAL loan opened by the date, DPD, outstanding and
overdue amounts as of the end of the date. Paid amounts as of the date come from the
installment's cache (`amount_paid_minor`, `paid_on` = date of its latest allocation) when that
date is not after the business date, else from the allocations dated up to it: a daily run reads
the allocations of only the few installments paid since (index on the allocations' date). Only
installments unpaid now or paid after the date are aggregated.

History: `dpd_bucket_changes` gets a row when a loan's bucket differs from its bucket on the
computed day before (latest earlier change, else current); `dpd_daily_summary` one row per
bucket per day. A day is replaced whole when re-run. The loans' current dpd and bucket are
written only for the latest computed day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain.collections import BUCKET_BOUNDS, BUCKETS, TOP_BUCKET, TRACKED_STATUSES
from .guard import as_writer

DPD_LOCK = 727014  # one DPD computation at a time: a day reads the day before it

_STATUSES = ", ".join(f"'{s}'" for s in TRACKED_STATUSES)
_BUCKET_CASE = (
    "CASE "
    + " ".join(f"WHEN dpd <= {bound} THEN '{name}'" for bound, name in BUCKET_BOUNDS)
    + f" ELSE '{TOP_BUCKET}' END"
)

DPD_AS_OF = f"""
WITH paid_since AS (
    -- what was paid by the day on installments that received money after it (bigint like the
    -- cache: sum() of bigint is numeric, which would make every amount below numeric)
    SELECT a.installment_id,
           CAST(sum(a.amount_minor) FILTER (WHERE a.paid_on <= :day) AS bigint) AS paid
    FROM lending.payment_allocations a
    WHERE a.installment_id IN (
        SELECT installment_id FROM lending.payment_allocations WHERE paid_on > :day
    )
    GROUP BY a.installment_id
), schedule AS (
    -- a fully paid installment owes nothing, unless it was paid after the day
    SELECT i.loan_id, i.due_date,
           i.amount_due_minor - CASE WHEN i.paid_on IS NULL OR i.paid_on <= :day
                                     THEN i.amount_paid_minor
                                     ELSE coalesce(ps.paid, 0) END AS open_minor
    FROM lending.installments i
    LEFT JOIN paid_since ps ON ps.installment_id = i.id
    WHERE i.amount_paid_minor < i.amount_due_minor OR i.paid_on > :day
), per_loan AS (
    SELECT loan_id,
           -- sum_minor: bigint in, a bigint state per loan (migration 0016), not sum()'s numeric
           min(due_date) FILTER (WHERE due_date < :day AND open_minor > 0) AS oldest_unpaid,
           lending.sum_minor(open_minor) AS outstanding,
           coalesce(lending.sum_minor(open_minor) FILTER (WHERE due_date < :day), 0) AS overdue
    FROM schedule
    GROUP BY loan_id
)
SELECT l.id AS loan_id, l.collector_id,
       coalesce(:day - p.oldest_unpaid, 0) AS dpd,
       coalesce(p.outstanding, 0) AS outstanding_minor,
       coalesce(p.overdue, 0) AS overdue_minor,
       l.dpd AS written_dpd, l.bucket AS written_bucket  -- the loan's, from the latest day
FROM lending.collection_loans l
LEFT JOIN per_loan p ON p.loan_id = l.id
WHERE l.status IN ({_STATUSES}) AND l.opened_on <= :day
"""

# A day after the latest computed one: the bucket before it is the loans' current bucket (written
# from that day, read with the day's DPD), no join. Any other day (or none computed yet): the
# latest change before it.
CHANGES_AFTER_LATEST = """
INSERT INTO lending.dpd_bucket_changes (loan_id, business_date, from_bucket, bucket, dpd)
SELECT d.loan_id, :day, d.written_bucket, d.bucket, d.dpd
FROM dpd_day d
WHERE d.bucket <> d.written_bucket
"""
CHANGES_BETWEEN_DAYS = """
INSERT INTO lending.dpd_bucket_changes (loan_id, business_date, from_bucket, bucket, dpd)
SELECT d.loan_id, :day, coalesce(prev.bucket, 'current'), d.bucket, d.dpd
FROM dpd_day d
LEFT JOIN LATERAL (
    SELECT c.bucket FROM lending.dpd_bucket_changes c
    WHERE c.loan_id = d.loan_id AND c.business_date < :day
    ORDER BY c.business_date DESC LIMIT 1
) prev ON true
WHERE d.bucket <> coalesce(prev.bucket, 'current')
"""

_BUCKETS_VALUES = ", ".join(f"('{b}', {n})" for n, b in enumerate(BUCKETS))


@dataclass(frozen=True)
class DayResult:
    business_date: date
    loans: int
    changes: int
    buckets: dict[str, int]
    current_book_updated: int


def computed_days(conn: Connection, after: date) -> list[date]:
    return list(
        conn.execute(
            sa.text(
                "SELECT business_date FROM lending.dpd_days WHERE business_date > :d ORDER BY 1"
            ),
            {"d": after},
        ).scalars()
    )


def compute_day(conn: Connection, day: date, run_id: str | None) -> DayResult:
    """Compute `day` for the whole book and replace its history rows (call in a transaction)."""
    # Aggregating the open installments of a million loans hashes ~160 MB: in memory, for this
    # transaction only (the default 4 MB spills to disk and doubles the time).
    conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
    conn.execute(
        sa.text(
            "CREATE TEMP TABLE dpd_day ON COMMIT DROP AS "
            f"SELECT d.*, {_BUCKET_CASE} AS bucket FROM ({DPD_AS_OF}) d"
        ),
        {"day": day},
    )
    # No key or statistics on it: every later statement reads it whole (the update in a hash
    # join, of the loans whose DPD moved only), and the planner sizes it from its pages.
    before = conn.execute(
        sa.text("SELECT max(business_date) FROM lending.dpd_days"), {"day": day}
    ).scalar_one()
    # the loans' current buckets are those of the latest computed day: usable only right after it
    newest = before is not None and before < day
    conn.execute(
        sa.text("DELETE FROM lending.dpd_bucket_changes WHERE business_date = :day"), {"day": day}
    )
    changes = conn.execute(
        sa.text(CHANGES_AFTER_LATEST if newest else CHANGES_BETWEEN_DAYS), {"day": day}
    ).rowcount
    conn.execute(
        sa.text("DELETE FROM lending.dpd_daily_summary WHERE business_date = :day"), {"day": day}
    )
    summary = conn.execute(
        sa.text(
            f"""
            INSERT INTO lending.dpd_daily_summary
                (business_date, bucket, loans, outstanding_minor, overdue_minor, dpd_sum)
            SELECT :day, b.bucket, coalesce(d.loans, 0), coalesce(d.outstanding_minor, 0),
                   coalesce(d.overdue_minor, 0), coalesce(d.dpd_sum, 0)
            FROM (VALUES {_BUCKETS_VALUES}) AS b(bucket, ord)
            LEFT JOIN (  -- the book into five rows first, then the empty buckets joined in
                SELECT bucket, count(*) AS loans, sum(outstanding_minor) AS outstanding_minor,
                       sum(overdue_minor) AS overdue_minor, sum(dpd) AS dpd_sum
                FROM dpd_day GROUP BY bucket
            ) d ON d.bucket = b.bucket
            ORDER BY b.ord
            RETURNING bucket, loans
            """
        ),
        {"day": day},
    )
    buckets = dict(summary.all())
    loans = sum(buckets.values())
    conn.execute(
        sa.text(
            """
            INSERT INTO lending.dpd_days (business_date, loans, run_id) VALUES (:day, :loans, :run)
            ON CONFLICT (business_date) DO UPDATE
            SET loans = excluded.loans, run_id = excluded.run_id, computed_at = now()
            """
        ),
        {"day": day, "loans": loans, "run": run_id},
    )
    updated = 0
    latest = conn.execute(sa.text("SELECT max(business_date) FROM lending.dpd_days")).scalar_one()
    if latest == day:
        as_writer(conn, "dpd")
        updated = conn.execute(
            sa.text(
                """
                UPDATE lending.collection_loans l
                SET dpd = d.dpd, bucket = d.bucket, dpd_changed_on = :day, updated_at = now()
                FROM dpd_day d
                WHERE (d.written_dpd, d.written_bucket) IS DISTINCT FROM (d.dpd, d.bucket)
                  AND l.id = d.loan_id AND (l.dpd, l.bucket) IS DISTINCT FROM (d.dpd, d.bucket)
                """
            ),
            {"day": day},
        ).rowcount
    return DayResult(day, loans, changes, buckets, updated)


def loan_buckets_on(conn: Connection, day: date) -> dict[int, str]:
    """Each loan's bucket on a computed day, from the changes (for reports and tests)."""
    rows = conn.execute(
        sa.text(
            """
            SELECT l.id, coalesce((
                SELECT c.bucket FROM lending.dpd_bucket_changes c
                WHERE c.loan_id = l.id AND c.business_date <= :day
                ORDER BY c.business_date DESC LIMIT 1), 'current')
            FROM lending.collection_loans l
            """
        ),
        {"day": day},
    )
    return dict(rows.all())
