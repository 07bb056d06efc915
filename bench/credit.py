"""Retailer credit at scale: guardrails evaluation, aging and insights regeneration, each
set-based vs a per-retailer loop using the domain functions (same results required).

The book (100,000 retailers, 2,000,000 credit transactions, 1,000,000 orders by default) is
generated in the database with generate_series (`lending_dev.seed.credit.generate_credit_book`)
in a scratch database on the embedded (or configured) server. Each set-based path is the one the
jobs run (`db/credit/guardrails.py` + `domain/credit_guardrails.py`, `db/credit/exposure.py`,
`db/credit/insights.py` + `domain/credit_insights.py`); each loop fetches one retailer's rows at
a time and applies the domain functions, as a per-retailer script would.

    uv run python -m bench.credit [--retailers N] [--orders N] [--transactions N]

Set-based times are the median of three runs (like bench/auto_deduct.py), after VACUUM ANALYZE
of the loaded book. Targets: insights <= 10 s, guardrails <= 3 s, every ratio >= 20. The last
line is `credit_ratio_vs_loop: N`, the smallest of the three ratios (loop time / set-based time).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections import defaultdict
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from lending_dev.seed.credit import generate_credit_book
from lending_pipelines.db import migrate
from lending_pipelines.db.credit.exposure import aging_rows
from lending_pipelines.db.credit.guardrails import breaching_retailers
from lending_pipelines.db.credit.insights import period_totals
from lending_pipelines.db.server import drop_database, ensure_database, server_url
from lending_pipelines.domain.credit_aging import aging_bucket
from lending_pipelines.domain.credit_guardrails import guardrail_decision
from lending_pipelines.domain.credit_insights import (
    OrderLine,
    PeriodOrder,
    Repayment,
    compute_insights,
    insight_message,
)
from lending_pipelines.settings import Settings
from lending_pipelines.workflows.credit.guardrails import decide
from lending_pipelines.workflows.credit.insights import insight_row, period_of

BOUNDS = (30, 60, 90)
SET_BASED_REPEATS = 3
PERIOD_DAYS = 30

ACCOUNT_SQL = sa.text(
    "SELECT r.credit_status, a.credit_limit, a.max_outstanding_days, a.currency "
    "FROM lending.retailers r JOIN lending.credit_accounts a ON a.retailer_id = r.id "
    "WHERE r.id = :id"
)
UNPAID_SQL = sa.text(
    "SELECT amount - cleared_amount AS owed, due_date, (created_at AT TIME ZONE :tz)::date "
    "AS created_on, currency FROM lending.credit_transactions WHERE retailer_id = :id "
    "AND status IN ('OPEN', 'PARTIAL') AND amount > 0 AND type IN ('DEBIT', 'ADJUSTMENT')"
)
ORDERS_SQL = sa.text(
    "SELECT amount, payment_mode, items FROM lending.orders WHERE retailer_id = :id "
    "AND status <> 'FAILED' AND (created_at AT TIME ZONE :tz)::date BETWEEN :start AND :end"
)
REPAID_SQL = sa.text(
    "SELECT due_date, (cleared_at AT TIME ZONE :tz)::date AS cleared_on "
    "FROM lending.credit_transactions WHERE retailer_id = :id AND status = 'CLEARED' "
    "AND amount > 0 AND type IN ('DEBIT', 'ADJUSTMENT') "
    "AND (cleared_at AT TIME ZONE :tz)::date BETWEEN :start AND :end"
)
NAME_SQL = sa.text("SELECT name FROM lending.retailers WHERE id = :id")


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


# --- guardrails ----------------------------------------------------------------------------------


def guardrails_set_based(conn, day: date, tz: str) -> dict[str, str]:
    rule = decide(day)
    pauses = (rule(e) for e in breaching_retailers(conn, business_date=day, tz=tz))
    return {p.retailer_id: p.reason for p in pauses if p is not None}


def guardrails_loop(conn, ids: list[str], day: date, tz: str) -> dict[str, str]:
    found = {}
    for retailer_id in ids:
        status, limit, max_days, currency = conn.execute(ACCOUNT_SQL, {"id": retailer_id}).one()
        if status != "ACTIVE":
            continue
        unpaid = conn.execute(UNPAID_SQL, {"id": retailer_id, "tz": tz}).all()
        decision = guardrail_decision(
            outstanding=sum(row.owed for row in unpaid),
            credit_limit=limit,
            currency=currency,
            oldest_unpaid_debit_on=min((row.created_on for row in unpaid), default=None),
            business_date=day,
            max_outstanding_days=max_days,
        )
        if decision.pause and decision.reason:
            found[retailer_id] = decision.reason
    return found


# --- aging ---------------------------------------------------------------------------------------


def aging_set_based(conn, day: date) -> dict[tuple[str, str], int]:
    return {
        (r.retailer_id, r.bucket): r.amount
        for r in aging_rows(conn, business_date=day, bounds=BOUNDS)
    }


def aging_loop(conn, ids: list[str], day: date, tz: str) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for retailer_id in ids:
        for row in conn.execute(UNPAID_SQL, {"id": retailer_id, "tz": tz}):
            totals[(retailer_id, aging_bucket(row.due_date, day, BOUNDS))] += row.owed
    return dict(totals)


# --- insights ------------------------------------------------------------------------------------


def insights_set_based(conn, day: date, tz: str) -> dict[str, tuple]:
    start, end = period_of(day, PERIOD_DAYS)
    rows = (insight_row(t, PERIOD_DAYS) for t in period_totals(conn, start=start, end=end, tz=tz))
    return {
        row["retailer_id"]: (
            row["orders_count"],
            row["spend"],
            tuple(row["top_products"]),
            row["on_time_rate"],
            row["utilisation"],
            row["message"],
        )
        for row in rows
    }


def insights_loop(conn, ids: list[str], day: date, tz: str) -> dict[str, tuple]:
    start, end = period_of(day, PERIOD_DAYS)
    found = {}
    for retailer_id in ids:
        status, limit, _, currency = conn.execute(ACCOUNT_SQL, {"id": retailer_id}).one()
        if status != "ACTIVE":
            continue
        params = {"id": retailer_id, "tz": tz, "start": start, "end": end}
        orders = [
            PeriodOrder(
                row.amount,
                row.payment_mode,
                tuple(OrderLine(i["name"], int(i["qty"])) for i in row.items),
            )
            for row in conn.execute(ORDERS_SQL, params)
        ]
        repaid = [Repayment(r.due_date, r.cleared_on) for r in conn.execute(REPAID_SQL, params)]
        outstanding = sum(r.owed for r in conn.execute(UNPAID_SQL, params))
        figures = compute_insights(
            orders=orders,
            repayments=repaid,
            outstanding=outstanding,
            credit_limit=limit,
            currency=currency,
        )
        name = conn.execute(NAME_SQL, {"id": retailer_id}).scalar_one()
        found[retailer_id] = (
            figures.orders,
            figures.spend,
            figures.top_products,
            figures.on_time_rate,
            figures.utilisation,
            insight_message(name, figures, PERIOD_DAYS),
        )
    return found


def compare(name: str, fast: dict, slow: dict) -> None:
    if fast != slow:
        differing = sorted(k for k in set(fast) | set(slow) if fast.get(k) != slow.get(k))[:5]
        raise SystemExit(f"{name}: set-based and loop results differ, e.g. for {differing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--retailers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--transactions", type=int, default=2_000_000)
    args = parser.parse_args()
    settings = Settings.from_env()
    tz = settings.credit_timezone
    day = datetime.now(ZoneInfo(tz)).date()
    url = server_url(settings).set(database=f"lending_bench_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    rendered = url.render_as_string(hide_password=False)
    engine = sa.create_engine(rendered)
    try:
        migrate.upgrade(rendered)
        with engine.begin() as conn:
            counts, load_seconds = timed(
                lambda: generate_credit_book(
                    conn,
                    retailers=args.retailers,
                    orders_per_retailer=max(1, args.orders // args.retailers),
                    transactions=args.transactions,
                    tz=tz,
                    prefix="B",
                )
            )
        # What autovacuum does to a table after a bulk load: statistics and the visibility map.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        print(f"book: {counts} generated in {load_seconds:.1f} s")
        results = {}
        with engine.connect() as conn:
            ids = list(
                conn.execute(sa.text("SELECT id FROM lending.retailers ORDER BY id")).scalars()
            )
            for name, fast_fn, slow_fn in (
                (
                    "guardrails",
                    lambda: guardrails_set_based(conn, day, tz),
                    lambda: guardrails_loop(conn, ids, day, tz),
                ),
                (
                    "aging",
                    lambda: aging_set_based(conn, day),
                    lambda: aging_loop(conn, ids, day, tz),
                ),
                (
                    "insights",
                    lambda: insights_set_based(conn, day, tz),
                    lambda: insights_loop(conn, ids, day, tz),
                ),
            ):
                # set-based: the median of a few runs (under 10 s each, so machine noise
                # matters); the loop is timed once (its noise averages out over 100,000 retailers)
                runs = [timed(fast_fn) for _ in range(SET_BASED_REPEATS)]
                fast = runs[0][0]
                fast_seconds = statistics.median(seconds for _, seconds in runs)
                slow, slow_seconds = timed(slow_fn)
                compare(name, fast, slow)
                results[name] = slow_seconds / fast_seconds
                print(
                    f"{name}: set-based {fast_seconds:.3f} s, per-retailer loop "
                    f"{slow_seconds:.3f} s, ratio {results[name]:.1f} ({len(fast)} results, "
                    f"set-based runs {', '.join(f'{seconds:.3f}' for _, seconds in runs)})"
                )
        print(f"credit_ratio_vs_loop: {min(results.values()):.1f}")
    finally:
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
