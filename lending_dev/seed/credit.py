"""Demo data for workflow 2 (retailer credit), generated set-based (generate_series), so the
same generator fills a few hundred retailers for `make dev` and 100,000 for bench/credit.py.

Retailer i (1..n), relative to today in the credit timezone:
* credit limit 500.00-5,250.00 INR, max order value half of it, max outstanding days 30/45/60;
  i % 25 = 3 PAUSED, i % 50 = 11 BLOCKED; i % 10 = 7 within 5.00 of its limit, i % 10 = 8
  over it;
* `orders_per_retailer` orders over the last 120 days (items from a small catalogue), a quarter
  COD; (i * j) % 97 = 5 FAILED (its debit not reversed yet: the reversal sensor's work);
* a DEBIT per CREDIT order due 14 days after it; recent ones OPEN (every fifth PARTIAL),
  older ones CLEARED (early, on the due date or late) except for retailers i % 7 = 0, whose
  old debits stay unpaid: every aging bucket is populated and guardrails have work;
* a CREDIT payment row per cleared or partly paid debit, and standalone debits up to
  `transactions` rows in all;
* pending orders (checkout started) for i % 3 = 0 aged 0-71 hours (some past the 24-hour expiry)
  and COMPLETED ones for i % 9 = 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lending_pipelines.settings import Settings

DEMO_PREFIX = "RTL-"
DEMO_RETAILERS = 300
PRODUCTS = ("Rice", "Atta", "Sugar", "Dal", "Oil", "Tea", "Soap", "Biscuits")

RETAILERS_SQL = """
WITH ids AS (SELECT i, :prefix || lpad(i::text, 6, '0') AS id FROM generate_series(1, :n) i)
INSERT INTO lending.retailers (id, name, whatsapp_number, preferred_language, credit_status,
                               credit_paused_at, credit_pause_reason)
SELECT id, 'Retailer ' || i, '+9197' || lpad(i::text, 8, '0'),
       CASE WHEN i % 4 = 0 THEN 'hi' ELSE 'en' END,
       CASE WHEN i % 25 = 3 THEN 'PAUSED' WHEN i % 50 = 11 THEN 'BLOCKED' ELSE 'ACTIVE' END,
       CASE WHEN i % 25 = 3 THEN now() - make_interval(days => i % 9) END,
       CASE WHEN i % 25 = 3 THEN 'paused by credit ops after a missed payment plan' END
FROM ids;
INSERT INTO lending.credit_accounts (retailer_id, credit_limit, max_order_value,
                                     max_outstanding_days, currency)
SELECT :prefix || lpad(i::text, 6, '0'), 50000 + (i % 20) * 25000,
       (50000 + (i % 20) * 25000) / 2, 30 + (i % 3) * 15, 'INR'
FROM generate_series(1, :n) i;
"""

ORDERS_SQL = """
INSERT INTO lending.orders (retailer_id, payment_mode, status, amount, currency, items,
                            created_at, failed_at, failure_reason)
SELECT :prefix || lpad(i::text, 6, '0'),
       CASE WHEN (i + j) % 4 = 0 THEN 'COD' ELSE 'CREDIT' END,
       CASE WHEN (i * j) % 97 = 5 THEN 'FAILED' ELSE 'DELIVERED' END,
       1000 + ((i * 31 + j * 17) % 400) * 100, 'INR',
       jsonb_build_array(
           jsonb_build_object('name', (CAST(:products AS text[]))[1 + (i + j) % 8],
                              'qty', 1 + (i + j) % 5),
           jsonb_build_object('name', (CAST(:products AS text[]))[1 + (i * 3 + j) % 8],
                              'qty', 1 + (i * j) % 3)),
       created, CASE WHEN (i * j) % 97 = 5 THEN created + interval '2 hours' END,
       CASE WHEN (i * j) % 97 = 5 THEN 'wholesaler could not deliver' END
FROM generate_series(1, :n) i
CROSS JOIN generate_series(1, :m) j
CROSS JOIN LATERAL (
    SELECT ((now() AT TIME ZONE :tz)::date - ((i * 7 + j * 13) % 121))::timestamp
           AT TIME ZONE :tz + make_interval(hours => 8 + (i + j) % 10) AS created
) c;
"""

DEBITS_SQL = """
WITH today AS (SELECT (now() AT TIME ZONE :tz)::date AS d),
credit_orders AS (
    SELECT o.id, o.retailer_id, o.amount, o.status AS order_status, o.created_at,
           (o.created_at AT TIME ZONE :tz)::date AS created_on,
           substring(o.retailer_id from length(:prefix) + 1)::int AS i,
           (o.id % 11)::int AS j
    FROM lending.orders o
    WHERE o.payment_mode = 'CREDIT' AND o.retailer_id LIKE :prefix || '%'
),
shaped AS (
    SELECT c.*, c.created_on + 14 AS due, (SELECT d FROM today) - c.created_on AS age,
           CASE
               WHEN c.order_status = 'FAILED' THEN 'OPEN'
               WHEN (SELECT d FROM today) - c.created_on <= 20
                   THEN CASE WHEN (c.i + c.j) % 5 = 0 THEN 'PARTIAL' ELSE 'OPEN' END
               WHEN c.i % 7 = 0 AND c.j % 2 = 0 THEN 'OPEN'
               ELSE 'CLEARED'
           END AS status
    FROM credit_orders c
)
INSERT INTO lending.credit_transactions (retailer_id, order_id, type, amount, currency,
                                         due_date, status, cleared_amount, cleared_at,
                                         created_at)
SELECT retailer_id, id, 'DEBIT', amount, 'INR', due, status,
       CASE status WHEN 'CLEARED' THEN amount WHEN 'PARTIAL' THEN amount / 2 ELSE 0 END,
       CASE WHEN status = 'CLEARED'
            THEN (due + ((i + j) % 4)::int - 2)::timestamp AT TIME ZONE :tz + interval '15 hours'
       END,
       created_at
FROM shaped;
"""

PAYMENTS_SQL = """
INSERT INTO lending.credit_transactions (retailer_id, type, amount, currency, status,
                                         cleared_at, notes, applies_to, created_at)
SELECT retailer_id, 'CREDIT', cleared_amount, currency, 'CLEARED',
       coalesce(cleared_at, created_at + interval '3 days'), 'payment (demo)', id,
       coalesce(cleared_at, created_at + interval '3 days')
FROM lending.credit_transactions
WHERE type = 'DEBIT' AND cleared_amount > 0 AND retailer_id LIKE :prefix || '%';
"""

TOP_UP_SQL = """
INSERT INTO lending.credit_transactions (retailer_id, type, amount, currency, due_date, status,
                                         cleared_amount, cleared_at, created_at)
SELECT :prefix || lpad((1 + g % :n)::text, 6, '0'), 'DEBIT', 500 + (g % 90) * 100, 'INR',
       (now() AT TIME ZONE :tz)::date - (g % 150)::int + 14, 'CLEARED', 500 + (g % 90) * 100,
       now() - make_interval(days => g % 150) + interval '10 days',
       now() - make_interval(days => g % 150)
FROM generate_series(1, :missing) g;
"""

LIMITS_SQL = """
WITH owed AS (
    SELECT retailer_id, sum(amount - cleared_amount) AS outstanding
    FROM lending.credit_transactions
    WHERE status IN ('OPEN', 'PARTIAL') AND retailer_id LIKE :prefix || '%'
    GROUP BY retailer_id
)
UPDATE lending.credit_accounts a
SET credit_limit = CASE
        WHEN substring(a.retailer_id from length(:prefix) + 1)::int % 10 = 7
            THEN o.outstanding + 500
        ELSE greatest(o.outstanding - 1000, 0)
    END
FROM owed o
WHERE o.retailer_id = a.retailer_id
  AND substring(a.retailer_id from length(:prefix) + 1)::int % 10 IN (7, 8);
"""

PENDING_SQL = """
INSERT INTO lending.pending_orders (retailer_id, amount, currency, items, status, created_at,
                                    completed_at)
SELECT :prefix || lpad(i::text, 6, '0'), 2000 + (i % 50) * 300, 'INR',
       jsonb_build_array(jsonb_build_object('name', (CAST(:products AS text[]))[1 + i % 8],
                                            'qty', 1 + i % 4)),
       CASE WHEN i % 9 = 1 THEN 'COMPLETED' ELSE 'PENDING' END,
       now() - make_interval(hours => (i * 5) % 72),
       CASE WHEN i % 9 = 1 THEN now() - make_interval(hours => (i * 5) % 72 - 1) END
FROM generate_series(1, :n) i
WHERE i % 3 = 0 OR i % 9 = 1;
"""


def generate_credit_book(
    conn: Connection,
    *,
    retailers: int,
    orders_per_retailer: int,
    transactions: int,
    tz: str,
    prefix: str = DEMO_PREFIX,
) -> dict[str, int]:
    """Insert the book described above; returns the row counts."""
    params = {
        "prefix": prefix,
        "n": retailers,
        "m": orders_per_retailer,
        "tz": tz,
        "products": list(PRODUCTS),
    }
    for sql in (RETAILERS_SQL, ORDERS_SQL, DEBITS_SQL, PAYMENTS_SQL):
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(sa.text(statement), params)
    count = conn.execute(
        sa.text(
            "SELECT count(*) FROM lending.credit_transactions WHERE retailer_id LIKE :p || '%'"
        ),
        {"p": prefix},
    ).scalar_one()
    if transactions > count:
        conn.execute(sa.text(TOP_UP_SQL), {**params, "missing": transactions - count})
    conn.execute(sa.text(LIMITS_SQL), params)
    conn.execute(sa.text(PENDING_SQL), params)
    return {
        table: conn.execute(
            sa.text(f"SELECT count(*) FROM lending.{table} WHERE retailer_id LIKE :p || '%'"),
            {"p": prefix},
        ).scalar_one()
        for table in ("credit_accounts", "orders", "credit_transactions", "pending_orders")
    }


def seed_credit(conn: Connection, settings: Settings) -> None:
    """Idempotent: the demo book is generated once (when none of its retailers exists)."""
    exists = conn.execute(
        sa.text("SELECT 1 FROM lending.retailers WHERE id LIKE :p || '%' LIMIT 1"),
        {"p": DEMO_PREFIX},
    ).first()
    if exists:
        return
    generate_credit_book(
        conn,
        retailers=DEMO_RETAILERS,
        orders_per_retailer=6,
        transactions=0,
        tz=settings.credit_timezone,
    )
