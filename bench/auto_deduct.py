"""Auto-deduct for 100,000 retailers: one set-based statement vs a per-retailer loop.

Both compute the same thing from the same data — each retailer's debt and settings in the
database and a wallet balance as read from the ledger: the set-based path passes every reading
in one statement (`db/escrow.py::compute_deductions`); the loop fetches each retailer's row and
applies `domain/deduction.py::compute_deduction`, which is what a per-retailer script does.
Results must be identical. Runs in a scratch database on the embedded (or configured) server.

    uv run python -m bench.auto_deduct [--retailers N]

The last line is `auto_deduct_ratio_vs_loop: N` (loop time / set-based time, the median of
five set-based runs; target >= 20, set-based <= 2 s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from decimal import Decimal

import sqlalchemy as sa

from lending_pipelines.db import migrate
from lending_pipelines.db.escrow import compute_deductions
from lending_pipelines.db.server import drop_database, ensure_database, server_url
from lending_pipelines.domain.deduction import compute_deduction
from lending_pipelines.settings import Settings

PERCENT = Decimal(30)
# The set-based run takes under a second, so machine noise matters: the median of a few runs
# (the 15-second loop is timed once; its noise averages out over 100,000 iterations).
SET_BASED_REPEATS = 5
MINIMUM = 10_000

LOAD_SQL = sa.text(
    """
    WITH src AS (
        SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:debts AS bigint[]),
                             CAST(:pcts AS numeric[]), CAST(:caps AS bigint[]),
                             CAST(:mins AS bigint[])) AS s(id, debt, pct, cap, minimum)
    ), debts AS (
        INSERT INTO lending.retailer_debts (retailer_id, currency, outstanding_amount)
        SELECT id, 'RWF', debt FROM src
    )
    INSERT INTO lending.auto_deduct_settings
           (retailer_id, enabled, percentage, max_daily_amount, min_wallet_balance)
    SELECT id, true, pct, cap, minimum FROM src
    """
)

ROW_SQL = sa.text(
    """
    SELECT d.outstanding_amount, s.percentage, s.max_daily_amount, s.min_wallet_balance
      FROM lending.retailer_debts d
      JOIN lending.auto_deduct_settings s ON s.retailer_id = d.retailer_id
     WHERE d.retailer_id = :retailer_id AND d.currency = :currency
    """
)


def generate(count: int, rng: random.Random) -> tuple[dict, list[tuple[str, str, int]]]:
    ids = [f"R{n:07d}" for n in range(count)]
    columns = {
        "ids": ids,
        "debts": [rng.choice([0, rng.randint(1, 2_000_000)]) for _ in ids],
        "pcts": [rng.choice([None, Decimal(rng.randint(100, 10_000)) / 100]) for _ in ids],
        "caps": [rng.choice([None, rng.randint(0, 200_000)]) for _ in ids],
        "mins": [rng.choice([None, rng.randint(0, 30_000)]) for _ in ids],
    }
    readings = [(retailer, rng.randint(-1_000, 500_000)) for retailer in ids]
    return columns, readings


def set_based(conn: sa.Connection, readings) -> dict[str, int]:
    rows = compute_deductions(
        conn, "RWF", readings, default_percentage=PERCENT, default_minimum=MINIMUM
    )
    return {row.retailer_id: row.amount for row in rows}


def per_retailer_loop(conn: sa.Connection, readings) -> dict[str, int]:
    amounts = {}
    for retailer, wallet in readings:
        debt, pct, cap, minimum = conn.execute(
            ROW_SQL, {"retailer_id": retailer, "currency": "RWF"}
        ).one()
        amounts[retailer] = compute_deduction(
            debt=debt,
            wallet_balance=wallet,
            percentage=PERCENT if pct is None else pct,
            max_daily=cap,
            minimum_balance=MINIMUM if minimum is None else minimum,
        ).amount
    return amounts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--retailers", type=int, default=100_000)
    args = parser.parse_args()
    settings = Settings.from_env()
    url = server_url(settings).set(database=f"lending_bench_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    rendered = url.render_as_string(hide_password=False)
    engine = sa.create_engine(rendered)
    try:
        migrate.upgrade(rendered)
        columns, readings = generate(args.retailers, random.Random(20260301))
        with engine.begin() as conn:
            conn.execute(LOAD_SQL, columns)
            conn.execute(sa.text("ANALYZE lending.retailer_debts, lending.auto_deduct_settings"))
        with engine.connect() as conn:
            set_based(conn, readings[:1000])  # warm up connection and plan caches
            timings = []
            for _ in range(SET_BASED_REPEATS):
                started = time.perf_counter()
                fast = set_based(conn, readings)
                timings.append(time.perf_counter() - started)
            set_seconds = statistics.median(timings)
            started = time.perf_counter()
            slow = per_retailer_loop(conn, readings)
            loop_seconds = time.perf_counter() - started
        if fast != slow:
            differing = [r for r in slow if fast.get(r) != slow[r]][:5]
            raise SystemExit(f"set-based and loop results differ, e.g. for {differing}")
        deducting = sum(1 for amount in fast.values() if amount > 0)
        print(f"retailers: {args.retailers} ({deducting} with a deduction)")
        print(f"total_deducted_rwf: {sum(fast.values())}")
        print(f"set_based_seconds: {set_seconds:.3f} (median of {SET_BASED_REPEATS})")
        print(f"per_retailer_loop_seconds: {loop_seconds:.3f}")
        print(f"auto_deduct_ratio_vs_loop: {loop_seconds / set_seconds:.1f}")
    finally:
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
