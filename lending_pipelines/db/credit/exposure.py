"""Outstanding credit and its aging, set-based.

A charge is a DEBIT or a positive ADJUSTMENT; it is owed while OPEN or PARTIAL, for
`amount - cleared_amount`. Days are local days in the credit timezone (`:tz`). Aging buckets
are built from the same bounds as `domain.credit_aging.aging_bucket` (a test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain.credit_aging import bucket_labels, check_bounds

UNPAID_CHARGE = (
    "t.status IN ('OPEN', 'PARTIAL') AND t.amount > 0 AND t.type IN ('DEBIT', 'ADJUSTMENT')"
)

# One row per retailer with something owed: outstanding and the local day of its oldest charge.
EXPOSURE_CTE = f"""
exposure AS (
    SELECT t.retailer_id,
           sum(t.amount - t.cleared_amount)::bigint AS outstanding,
           min((t.created_at AT TIME ZONE :tz)::date) AS oldest_unpaid_on
    FROM lending.credit_transactions t
    WHERE {UNPAID_CHARGE}
    GROUP BY t.retailer_id
)"""


def bucket_index_sql(bounds: Sequence[int], days_expr: str) -> str:
    """The bucket's position in `bucket_labels(bounds)` for `days_expr` days past due:
    width_bucket over the lower bounds 1, b1 + 1, b2 + 1, ... (0 = current)."""
    lowers = [1, *(upper + 1 for upper in check_bounds(bounds))]
    return f"width_bucket({days_expr}, ARRAY[{', '.join(map(str, lowers))}])"


def bucket_case_sql(bounds: Sequence[int], days_expr: str) -> str:
    """The bucket label of `days_expr` days past due, in SQL."""
    labels = ", ".join(f"'{label}'" for label in bucket_labels(bounds))
    return f"(ARRAY[{labels}])[{bucket_index_sql(bounds, days_expr)} + 1]"


class AgingRow(NamedTuple):
    retailer_id: str
    bucket: str
    amount: int  # minor units of the retailer's credit currency


def aging_rows(conn: Connection, *, business_date: date, bounds: Sequence[int]) -> list[AgingRow]:
    """Outstanding by retailer and bucket, unordered: one scan of the unpaid-charge index,
    three narrow columns (160,000 rows for 100,000 retailers), the bucket as its position,
    named here. Debit counts and currencies per bucket: `outstanding_by_bucket`."""
    labels = bucket_labels(bounds)
    index = bucket_index_sql(bounds, "(CAST(:day AS date) - t.due_date)")
    query = sa.text(
        f"""
        SELECT t.retailer_id, {index} AS bucket, sum(t.amount - t.cleared_amount)::bigint
        FROM lending.credit_transactions t
        WHERE {UNPAID_CHARGE}
        GROUP BY t.retailer_id, bucket
        """
    )
    return [
        AgingRow(retailer_id, labels[bucket], amount)
        for retailer_id, bucket, amount in conn.execute(query, {"day": business_date})
    ]


def outstanding_by_bucket(
    conn: Connection, *, business_date: date, bounds: Sequence[int]
) -> list[dict]:
    """System-wide: bucket, currency, retailers, debits, amount (every bucket, zeros too)."""
    case = bucket_case_sql(bounds, "(CAST(:day AS date) - t.due_date)")
    labels = bucket_labels(bounds)
    query = sa.text(
        f"""
        SELECT {case} AS bucket, t.currency, count(DISTINCT t.retailer_id) AS retailers,
               count(*) AS debits, sum(t.amount - t.cleared_amount)::bigint AS amount
        FROM lending.credit_transactions t
        WHERE {UNPAID_CHARGE}
        GROUP BY bucket, t.currency
        """
    )
    found = {
        (r["bucket"], r["currency"]): dict(r)
        for r in conn.execute(query, {"day": business_date}).mappings()
    }
    currencies = sorted({currency for _, currency in found}) or ["INR"]
    return [
        found.get(
            (label, currency),
            {"bucket": label, "currency": currency, "retailers": 0, "debits": 0, "amount": 0},
        )
        for currency in currencies
        for label in labels
    ]


def total_outstanding(conn: Connection) -> dict[str, int]:
    """Currency → Σ owed, computed independently of the buckets (the reconciliation check)."""
    query = sa.text(
        "SELECT a.currency, coalesce(sum(r.owed), 0)::bigint FROM ("
        "  SELECT t.currency, t.amount - t.cleared_amount AS owed"
        f"  FROM lending.credit_transactions t WHERE {UNPAID_CHARGE}"
        ") r RIGHT JOIN (SELECT DISTINCT currency FROM lending.credit_transactions) a "
        "ON a.currency = r.currency GROUP BY a.currency"
    )
    return dict(conn.execute(query).all())


def retailer_exposure(conn: Connection, retailer_id: str, *, tz: str) -> dict | None:
    """One retailer's account and outstanding (for order validation and Launchpad jobs)."""
    query = sa.text(
        f"""
        WITH {EXPOSURE_CTE}
        SELECT r.id AS retailer_id, r.credit_status, a.credit_limit, a.max_order_value,
               a.max_outstanding_days, a.currency, coalesce(e.outstanding, 0) AS outstanding,
               e.oldest_unpaid_on
        FROM lending.retailers r
        JOIN lending.credit_accounts a ON a.retailer_id = r.id
        LEFT JOIN exposure e ON e.retailer_id = r.id
        WHERE r.id = :retailer_id
        """
    )
    row = conn.execute(query, {"retailer_id": retailer_id, "tz": tz}).mappings().first()
    return None if row is None else dict(row)
