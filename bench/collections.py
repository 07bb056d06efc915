"""Collections at 1,000,000 loans with 12 installments each (12,000,000 installments).

1. The book is generated set-based (generate_series, `lending_dev/seed/collections.py`): 60 %
   current, 10 % in each of 1-30, 31-60, 61-90, 90+, some closed and written off.
2. DPD for one business day, set-based (`db/collections/dpd.compute_day`: one statement for the
   book, history rows, the loans' current DPD written) — timed on a steady-state day (the day
   after a computed one: every delinquent loan's DPD moves, a few change bucket); the first
   day ever computed (every delinquent loan enters its bucket) is printed too.
3. The same with a per-loan loop, on a sample of 20,000 loans, scaled up x50 to 1,000,000: per
   loan its installments are read, `domain/collections.dpd_as_of` applied and the loan updated,
   which is what a per-loan cron does. The sample's results must equal the set-based ones.
4. A 100,000-row payment file (UTF-8 CSV) validated and posted by the payment-file engine:
   one payment per loan, mostly one instalment, some half or two (allocated oldest first).
   Three such files, each on a fresh random sample of loans; the median is the figure. Each is
   timed from reading the file to the commit: rows read and validated in Python, the accepted
   ones staged by COPY, allocated with running sums in SQL, written set-based
   (`db/collections/posting.py`); at this size the time is the database's (foreign-key checks
   of the new payments and allocations, locking and updating ~120,000 installment pages).

Runs in a scratch database on the embedded (or configured) server.

    uv run python -m bench.collections [--loans N] [--sample N] [--file-rows N]

The last line is `dpd_seconds_1m: N` (targets: <= 10 s, >= 50x the loop; file <= 10 s).
"""

# ruff: noqa: E402  (the path fix below must run before any other import)
from __future__ import annotations

import os
import sys

# Run as `python bench/collections.py`, this file's folder comes first on sys.path and the file
# would shadow the standard library's `collections`: drop the folder before importing anything.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from lending_dev.seed.collections import COLLECTORS, generate_book
from lending_pipelines.db import migrate
from lending_pipelines.db.collections.dpd import compute_day
from lending_pipelines.db.collections.guard import as_writer
from lending_pipelines.db.server import drop_database, ensure_database, server_url
from lending_pipelines.domain.collections import Allocation, Installment, bucket_for, dpd_as_of
from lending_pipelines.domain.collections_payments import Bounds
from lending_pipelines.settings import Settings
from lending_pipelines.workflows.collections.payment_files import process_payment_file

TIMEZONE = "Asia/Kolkata"
FILE_REPEATS = 3  # like the other benchmarks: the median of a few runs of the fast path


def per_loan_loop(conn: sa.Connection, loan_ids: list[int], day: date) -> dict[int, int]:
    results = {}
    for loan_id in loan_ids:
        rows = conn.execute(
            sa.text(
                "SELECT id, number, due_date, amount_due_minor, amount_paid_minor, paid_on "
                "FROM lending.installments WHERE loan_id = :id"
            ),
            {"id": loan_id},
        ).all()
        installments = [Installment(r.id, r.number, r.due_date, r.amount_due_minor) for r in rows]
        paid = [
            Allocation(r.id, r.amount_paid_minor, r.paid_on)
            for r in rows
            if r.amount_paid_minor and r.paid_on
        ]
        dpd = dpd_as_of(installments, paid, day)
        conn.execute(
            sa.text("UPDATE lending.collection_loans SET dpd = :dpd, bucket = :bucket "
                    "WHERE id = :id"),
            {"dpd": dpd, "bucket": bucket_for(dpd), "id": loan_id},
        )  # fmt: skip
        results[loan_id] = dpd
    return results


def payment_file(
    conn: sa.Connection, rows: int, day: date, rng: random.Random, first_utr: int
) -> str:
    loans = conn.execute(
        sa.text("SELECT id, principal_minor / 12 FROM lending.collection_loans "
                "WHERE status = 'ACTIVE' ORDER BY random() LIMIT :n"), {"n": rows}
    ).all()  # fmt: skip
    lines = ["utr,loan_id,amount,paid_on"]
    for n in range(rows):
        loan_id, emi = loans[n % len(loans)]
        # what borrowers pay: mostly one instalment, sometimes half or two
        amount = emi * rng.choice([2, 2, 2, 1, 4]) // 2
        rupees = f"{amount // 100}.{amount % 100:02d}"
        lines.append(f'{first_utr + n},{loan_id},"{rupees}",{day.isoformat()}')
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--file-rows", type=int, default=100_000)
    args = parser.parse_args()
    settings = Settings.from_env()
    url = server_url(settings).set(database=f"lending_bench_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    rendered = url.render_as_string(hide_password=False)
    engine = sa.create_engine(rendered)
    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    try:
        migrate.upgrade(rendered)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO lending.collectors (id, name) SELECT * FROM unnest("
                        "CAST(:ids AS text[]), CAST(:names AS text[]))"),
                {"ids": list(COLLECTORS), "names": list(COLLECTORS.values())},
            )  # fmt: skip
            generate_book(conn, loans=args.loans, collectors_count=len(COLLECTORS), today=today)
        generate_seconds = time.perf_counter() - started
        print(f"loans: {args.loans}, installments: {args.loans * 12} "
              f"(generated in {generate_seconds:.1f} s)")  # fmt: skip
        # A book of this size has been vacuumed and checkpointed before any business day: else
        # autovacuum starts on the freshly loaded tables, and the checkpointer writes out the
        # load's gigabytes, in the middle of the timed steps. (After the checkpoint every page
        # the timed steps change is logged whole once: the costly case for them.)
        started = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE) lending.collection_loans, lending.installments")
            try:
                conn.exec_driver_sql("CHECKPOINT")
            except sa.exc.DBAPIError as error:  # a configured server may refuse (pg_checkpoint)
                print(f"checkpoint refused: {error.orig}")
        print(f"vacuum_and_checkpoint_seconds: {time.perf_counter() - started:.1f} "
              "(not part of any figure)")  # fmt: skip

        with engine.begin() as conn:
            started = time.perf_counter()
            first = compute_day(conn, today - timedelta(days=1), run_id="bench")
            first_seconds = time.perf_counter() - started
        print(
            f"first_day_dpd_seconds: {first_seconds:.3f} (every delinquent loan enters its "
            f"bucket: {first.changes} bucket changes, {first.current_book_updated} loans "
            "updated; includes PostgreSQL's first pass over the freshly loaded rows)"
        )
        with engine.begin() as conn:
            started = time.perf_counter()
            result = compute_day(conn, today, run_id="bench")
            dpd_seconds = time.perf_counter() - started
        print(f"dpd_buckets: {result.buckets}")
        print(f"set_based_dpd_seconds: {dpd_seconds:.3f} ({result.changes} bucket changes, "
              f"{result.current_book_updated} loans updated)")  # fmt: skip

        with engine.connect() as conn:
            sample = conn.execute(
                sa.text("SELECT id FROM lending.collection_loans WHERE status IN "
                        "('ACTIVE', 'LEGAL') ORDER BY random() LIMIT :n"), {"n": args.sample}
            ).scalars().all()  # fmt: skip
            expected = dict(
                conn.execute(
                    sa.text("SELECT id, dpd FROM lending.collection_loans WHERE id = ANY(:ids)"),
                    {"ids": sample},
                ).all()
            )
            conn.commit()
            with conn.begin():
                as_writer(conn, "dpd")
                started = time.perf_counter()
                looped = per_loan_loop(conn, sample, today)
                loop_seconds = time.perf_counter() - started
        if looped != expected:
            differing = [i for i in sample if looped[i] != expected[i]][:5]
            raise SystemExit(f"set-based and loop DPD differ, e.g. for loans {differing}")
        scaled = loop_seconds * args.loans / len(sample)
        print(f"per_loan_loop_seconds: {loop_seconds:.3f} for {len(sample)} loans, scaled to "
              f"{args.loans}: {scaled:.1f}")  # fmt: skip
        print(f"dpd_ratio_vs_loop: {scaled / dpd_seconds:.1f}")

        # Three files, each paying a fresh random sample of loans; the median is the figure.
        file_timings = []
        rng = random.Random(14)
        with tempfile.TemporaryDirectory() as inbox, engine.connect() as conn:
            for number in range(FILE_REPEATS):
                path = Path(inbox) / f"bench-{number}.csv"
                first_utr = 700_000_000_000 + number * args.file_rows
                path.write_text(payment_file(conn, args.file_rows, today, rng, first_utr))
                conn.commit()
                started = time.perf_counter()
                report = process_payment_file(
                    engine, path, bounds=Bounds(), timezone=TIMEZONE, actor="bench", run_id=None
                )
                file_timings.append(time.perf_counter() - started)
                print(f"payment_file_rows: {report.rows} ({report.accepted} accepted, "
                      f"{report.rejected} rejected {report.rejected_by_reason}) in "
                      f"{file_timings[-1]:.3f} s")  # fmt: skip
        print(f"payment_file_seconds: {statistics.median(file_timings):.3f} (median of "
              f"{FILE_REPEATS}: {', '.join(f'{t:.2f}' for t in file_timings)})")  # fmt: skip
        print(f"dpd_seconds_1m: {dpd_seconds * 1_000_000 / args.loans:.2f}")
    finally:
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
