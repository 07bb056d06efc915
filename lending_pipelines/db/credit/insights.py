"""Per-retailer statistics for an insights period, set-based, and storing the insights.

`period_totals` returns, for every ACTIVE retailer, the totals `domain.credit_insights`
needs: orders that did not fail and their spend (created in the period, local days), the top
three items by quantity (ties by name, byte order like Python's sort), debits cleared in the
period and how many on or before their due date (local day of cleared_at), outstanding now and
the credit limit. `store_insights` upserts one row per retailer and period end, so a day can be
recomputed.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .exposure import EXPOSURE_CTE

# The period as an instant range (local midnight to local midnight), so the filters compare
# stored timestamps instead of converting every row to a local date.
IN_PERIOD = "o.created_at >= :period_from AND o.created_at < :period_until"

PERIOD_TOTALS_SQL = f"""
WITH {EXPOSURE_CTE},
active AS (
    SELECT r.id, r.name, a.credit_limit, a.currency
    FROM lending.retailers r JOIN lending.credit_accounts a ON a.retailer_id = r.id
    WHERE r.credit_status = 'ACTIVE' {{only}}
),
placed AS (
    SELECT o.id, o.retailer_id, o.amount, o.items
    FROM lending.orders o JOIN active ON active.id = o.retailer_id
    WHERE o.status <> 'FAILED' AND {IN_PERIOD}
),
order_totals AS (
    SELECT retailer_id, count(*) AS orders, sum(amount)::bigint AS spend
    FROM placed GROUP BY retailer_id
),
item_totals AS (
    SELECT p.retailer_id, item->>'name' AS name, sum((item->>'qty')::bigint) AS quantity
    FROM placed p CROSS JOIN LATERAL jsonb_array_elements(p.items) AS item
    GROUP BY p.retailer_id, item->>'name'
),
ranked AS (
    SELECT retailer_id, name,
           row_number() OVER (PARTITION BY retailer_id
                              ORDER BY quantity DESC, name COLLATE "C") AS rank
    FROM item_totals WHERE quantity > 0
),
top AS (
    SELECT retailer_id, jsonb_agg(name ORDER BY rank) AS products
    FROM ranked WHERE rank <= :top GROUP BY retailer_id
),
repaid AS (
    SELECT t.retailer_id, count(*) AS repayments,
           count(*) FILTER (WHERE (t.cleared_at AT TIME ZONE :tz)::date <= t.due_date) AS on_time
    FROM lending.credit_transactions t JOIN active ON active.id = t.retailer_id
    WHERE t.status = 'CLEARED' AND t.amount > 0 AND t.type IN ('DEBIT', 'ADJUSTMENT')
      AND t.cleared_at >= :period_from AND t.cleared_at < :period_until
    GROUP BY t.retailer_id
)
SELECT a.id AS retailer_id, a.name, a.credit_limit, a.currency,
       coalesce(o.orders, 0) AS orders, coalesce(o.spend, 0) AS spend,
       coalesce(top.products, '[]'::jsonb) AS top,
       coalesce(r.repayments, 0) AS repayments, coalesce(r.on_time, 0) AS on_time,
       coalesce(e.outstanding, 0) AS outstanding
FROM active a
LEFT JOIN order_totals o ON o.retailer_id = a.id
LEFT JOIN top ON top.retailer_id = a.id
LEFT JOIN repaid r ON r.retailer_id = a.id
LEFT JOIN exposure e ON e.retailer_id = a.id
ORDER BY a.id
"""


def period_totals(
    conn: Connection,
    *,
    start: date,
    end: date,
    tz: str,
    top: int = 3,
    only: list[str] | None = None,
) -> list[sa.RowMapping]:
    query = PERIOD_TOTALS_SQL.format(only="AND r.id = ANY(:only)" if only is not None else "")
    zone = ZoneInfo(tz)
    params: dict = {
        "tz": tz,
        "top": top,
        "period_from": datetime.combine(start, time(), tzinfo=zone),
        "period_until": datetime.combine(end + timedelta(days=1), time(), tzinfo=zone),
    }
    if only is not None:
        params["only"] = only
    # The item totals of every retailer are sorted once: in memory, not in temporary files.
    conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    return list(conn.execute(sa.text(query), params).mappings())


STORE_SQL = """
INSERT INTO lending.retailer_insights
    (retailer_id, period_start, period_end, orders_count, spend, average_order_value,
     top_products, repayments_count, on_time_rate, utilisation, outstanding, credit_limit,
     currency, message, generated_at, run_id)
SELECT retailer_id, CAST(:start AS date), CAST(:end AS date), orders_count, spend,
       average_order_value, top_products, repayments_count, on_time_rate, utilisation,
       outstanding, credit_limit, currency, message, now(), :run_id
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS i(
    retailer_id text, orders_count int, spend bigint, average_order_value bigint,
    top_products jsonb, repayments_count int, on_time_rate numeric, utilisation numeric,
    outstanding bigint, credit_limit bigint, currency text, message text)
ON CONFLICT (retailer_id, period_end) DO UPDATE SET
    period_start = excluded.period_start, orders_count = excluded.orders_count,
    spend = excluded.spend, average_order_value = excluded.average_order_value,
    top_products = excluded.top_products, repayments_count = excluded.repayments_count,
    on_time_rate = excluded.on_time_rate, utilisation = excluded.utilisation,
    outstanding = excluded.outstanding, credit_limit = excluded.credit_limit,
    currency = excluded.currency, message = excluded.message,
    generated_at = excluded.generated_at, run_id = excluded.run_id
"""


def store_insights(
    conn: Connection, rows: list[dict], *, start: date, end: date, run_id: str | None
) -> int:
    if not rows:
        return 0
    result = conn.execute(
        sa.text(STORE_SQL),
        {"rows": json.dumps(rows, default=str), "start": start, "end": end, "run_id": run_id},
    )
    return result.rowcount
