"""Demo data for workflow 5 (loan collections): a few thousand INR loans over every DPD bucket,
collectors with assignments, and a sample bank payment file with good and bad rows in the inbox.

The book is generated set-based (generate_series), the same statements `bench/collections.py`
uses for 1,000,000 loans. Loan classes by id: 60 % current; then 10 % each whose installments of
the last 30 / 60 / 90 / 150 days are unpaid (buckets 1-30, 31-60, 61-90, 90+); every 50th loan
CLOSED and every 97th WRITTEN_OFF. Twelve monthly installments from 30 days after opening
(opened 200-349 days ago). Paid installments carry their paid amount and date.

Idempotent: the book is generated once (while there is no collector COL-01); the sample file is
written while no file of that name was ever posted and it is not in the inbox already.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lending_pipelines.db.collections.tables import collectors, payment_files
from lending_pipelines.resources.collections_config import CollectionsConfig
from lending_pipelines.settings import Settings

DEMO_LOANS = 3_000
COLLECTORS = {f"COL-{n:02d}": name for n, name in enumerate(
    ("Asha Rao", "Ravi Kumar", "Meena Iyer", "Imran Shaikh", "Priya Nair"), 1)}  # fmt: skip
SAMPLE_FILE = "sample-bank-statement.csv"

GENERATE_LOANS_SQL = sa.text(
    """
    INSERT INTO lending.collection_loans
        (borrower_name, phone, principal_minor, status, collector_id, opened_on)
    SELECT 'Borrower ' || g,
           '+9198' || lpad((g % 100000000)::text, 8, '0'),
           12 * (1000 + (g % 50) * 100) * 100,
           CASE WHEN g % 50 = 0 THEN 'CLOSED' WHEN g % 97 = 0 THEN 'WRITTEN_OFF' ELSE 'ACTIVE' END,
           CASE WHEN :collectors > 0
                THEN 'COL-' || lpad(((g % greatest(:collectors, 1)) + 1)::text, 2, '0') END,
           CAST(:today AS date) - (200 + g % 150)
    FROM generate_series(1, :loans) AS g
    """
)

GENERATE_INSTALLMENTS_SQL = sa.text(
    """
    INSERT INTO lending.installments
        (loan_id, number, due_date, amount_due_minor, amount_paid_minor, paid_on)
    SELECT l.id, n, d.due, l.principal_minor / 12,
           CASE WHEN d.due < d.paid_before THEN l.principal_minor / 12 ELSE 0 END,
           CASE WHEN d.due < d.paid_before THEN d.due END
    FROM lending.collection_loans l
    CROSS JOIN generate_series(1, 12) AS n
    CROSS JOIN LATERAL (
        SELECT l.opened_on + 30 * n AS due,
               CAST(:today AS date) - CASE l.id % 10 WHEN 6 THEN 30 WHEN 7 THEN 60
                                                     WHEN 8 THEN 90 WHEN 9 THEN 150 ELSE 0 END
                   AS paid_before
    ) d
    WHERE l.id > :after_id
    """
)


def generate_book(conn: Connection, *, loans: int, collectors_count: int, today) -> int:
    """Append `loans` generated loans with their schedules; returns the first new loan id."""
    after = conn.execute(sa.text("SELECT coalesce(max(id), 0) FROM lending.collection_loans"))
    after_id = after.scalar_one()
    conn.execute(GENERATE_LOANS_SQL, {"loans": loans, "collectors": collectors_count,
                                      "today": today})  # fmt: skip
    conn.execute(GENERATE_INSTALLMENTS_SQL, {"today": today, "after_id": after_id})
    conn.execute(sa.text("ANALYZE lending.collection_loans"))
    conn.execute(sa.text("ANALYZE lending.installments"))
    return after_id + 1


def sample_file(first_loan: int, today) -> str:
    """Good rows (NEFT, RTGS, UPI; Indian amounts; one overpayment) and one row per common
    rejection: invalid UTR, backdated, future date, unknown loan, amount out of range, a closed
    loan, a UTR repeated in the file."""
    d = lambda days: (today - timedelta(days=days)).isoformat()  # noqa: E731
    ymd = today.strftime("%Y%m%d")
    loan = first_loan
    rows = [
        ("utr", "loan_id", "amount", "paid_on", "narration"),
        ("HDFCN26334000101", loan + 5, "10,100.00", d(1), "NEFT instalment"),
        (f"ICICR5{ymd}00000102", loan + 6, "1,00,000.50", d(2), "RTGS settlement (overpays)"),
        ("633400000103", loan + 15, "2500", d(0), "UPI"),
        ("UTR-ABC-1", loan + 16, "1,000", d(0), "bad: invalid UTR"),
        ("633400000104", loan + 17, "1,000", d(20), "bad: backdated 20 days"),
        ("633400000105", loan + 18, "1,000", d(-3), "bad: future date"),
        ("633400000106", 999_999_999, "1,000", d(0), "bad: unknown loan"),
        ("633400000107", loan + 19, "2,00,00,000", d(0), "bad: above one crore"),
        ("633400000108", loan + 49, "500", d(0), "bad: closed loan"),
        ("HDFCN26334000101", loan + 7, "500", d(0), "bad: UTR repeated in the file"),
    ]  # fmt: skip
    return "\n".join(",".join(f'"{v}"' for v in row) for row in rows) + "\n"


def seed_collections(conn: Connection, settings: Settings) -> None:
    today = datetime.now(ZoneInfo(settings.collections_timezone)).date()
    known = conn.execute(sa.select(collectors.c.id).where(collectors.c.id == "COL-01"))
    if known.scalar_one_or_none() is None:
        conn.execute(sa.insert(collectors), [{"id": i, "name": n} for i, n in COLLECTORS.items()])
        first = generate_book(conn, loans=DEMO_LOANS, collectors_count=len(COLLECTORS),
                              today=today)  # fmt: skip
    else:
        first = conn.execute(sa.text("SELECT min(id) FROM lending.collection_loans")).scalar_one()
    inbox = CollectionsConfig.from_env(settings).inbox
    posted = conn.execute(
        sa.select(payment_files.c.id).where(payment_files.c.name == SAMPLE_FILE)
    ).first()
    if posted is None and not (inbox / SAMPLE_FILE).exists():
        inbox.mkdir(parents=True, exist_ok=True)
        partial = inbox / f".{SAMPLE_FILE}.part"
        partial.write_text(sample_file(first, today))
        partial.replace(inbox / SAMPLE_FILE)  # the sensor never sees half a file
