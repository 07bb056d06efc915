"""Creator payouts: (a) eligibility over 100,000 creators and 2,000,000 ledger entries, set-based
vs a per-creator loop; (b) 2,000 transfers against the sandbox limited to 25 requests/s.

(a) The set-based path is the statement the `eligible_creators` asset runs
    (`db/payouts.py::evaluate_eligibility`, which also stores the result). The loop does the
    same per creator, as a per-creator script would: read the creator, its ledger entries, its
    pending requests and its reserved tokens, apply `domain/payouts.py::evaluate_creator`, and
    store the results at the end in one insert. Both must agree creator by creator.
(b) The sandbox runs in its own process with Stripe's test-mode limit (token bucket, 25/s).
    `LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS` (5) worker threads run `run_chunk_worker`, the code of
    the `payout_transfers` workers, over 80 chunks of 25, paced by the PostgreSQL-shared rate
    limit set to the account's limit (`--rate`, i.e. LENDING_STRIPE_REQUESTS_PER_SECOND).
    Printed: achieved transfers/s as a fraction of the limit, 429s met, duplicates at Stripe.

    uv run python -m bench.payouts [--creators 100000] [--entries 2000000] [--transfers 2000]

Last line: `eligibility_ratio_vs_loop: N` (targets: set-based <= 3 s, ratio >= 20; transfers
>= 0.8 of the limit with 0 duplicates).
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import sqlalchemy as sa

from lending_dev.sandbox.server import free_port
from lending_pipelines.db import migrate
from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.db.rate_limit import PostgresRateLimiter
from lending_pipelines.db.server import drop_database, ensure_database, server_url
from lending_pipelines.domain.payouts import (
    CreatorState,
    LedgerEntry,
    PayoutRules,
    WithdrawalRequest,
    evaluate_creator,
)
from lending_pipelines.resources.stripe_connect import StripeConnectResource
from lending_pipelines.settings import Settings
from lending_pipelines.workflows.payouts.processing import run_chunk_worker

PAYOUT_DATE = date(2026, 6, 15)
AS_OF = datetime(2026, 6, 15, 2, tzinfo=UTC)
RULES = PayoutRules(AS_OF, minimum_tokens=200, token_rate=Decimal("0.05"), currency="USD")
SET_BASED_REPEATS = 3
STRIPE_LIMIT = 25

LOAD_CREATORS = sa.text(
    """
    INSERT INTO lending.creators (external_ref, display_name, kyc_status, stripe_account_id,
                                  payouts_enabled, transfers_capability)
    SELECT 'b' || g, 'creator ' || g,
           CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'verified' END,
           CASE WHEN g % 17 = 0 THEN NULL ELSE 'acct_b' || g END,
           g % 13 <> 0,
           CASE WHEN g % 29 = 0 THEN 'inactive' ELSE 'active' END
    FROM generate_series(1, :creators) AS g
    """
)
# entries_per_creator rows per creator: mostly earnings spread over 90 days (some inside the
# 7-day hold), 5 % chargebacks, 2 % past withdrawals.
LOAD_LEDGER = sa.text(
    """
    INSERT INTO lending.ledger_entries (creator_id, entry_type, tokens, created_at, available_at)
    SELECT id, kind, tokens, created,
           CASE WHEN kind = 'earning' THEN created + interval '7 days' ELSE created END
    FROM (
        SELECT c.id, r.kind,
               CASE WHEN r.kind = 'earning' THEN 1 + floor(random() * 60)::int
                    ELSE -(1 + floor(random() * 30)::int) END AS tokens,
               CAST(:as_of AS timestamptz) - random() * interval '90 days' AS created
        FROM lending.creators c
        CROSS JOIN generate_series(1, :per_creator) AS k
        CROSS JOIN LATERAL (
            SELECT CASE WHEN x < 0.05 THEN 'chargeback'
                        WHEN x < 0.07 THEN 'withdrawal_completed'
                        ELSE 'earning' END AS kind
            FROM (SELECT random() + k * 0 + c.id * 0 AS x) AS roll
        ) AS r
    ) AS generated
    """
)
LOAD_REQUESTS = sa.text(
    """
    INSERT INTO lending.withdrawal_requests (creator_id, tokens, requested_at)
    SELECT id, 50 + (id % 400), CAST(:as_of AS timestamptz) - interval '2 days'
    FROM lending.creators WHERE id % 20 = 0
    """
)

CREATOR_SQL = sa.text(
    "SELECT kyc_status, stripe_account_id, payouts_enabled, transfers_capability "
    "FROM lending.creators WHERE id = :id"
)
ENTRIES_SQL = sa.text(
    "SELECT tokens, created_at, available_at FROM lending.ledger_entries WHERE creator_id = :id"
)
REQUESTS_SQL = sa.text(
    "SELECT id, tokens, requested_at FROM lending.withdrawal_requests "
    "WHERE creator_id = :id AND status = 'pending'"
)
RESERVED_SQL = sa.text(
    "SELECT coalesce(sum(i.tokens), 0) FROM lending.payout_items i "
    "JOIN lending.payout_batches b ON b.id = i.batch_id "
    "WHERE i.creator_id = :id AND i.status IN ('pending', 'processing', 'failed') "
    "AND b.payout_date <> :payout_date"
)


def scratch_database(settings: Settings):
    url = server_url(settings).set(database=f"lending_bench_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    rendered = url.render_as_string(hide_password=False)
    migrate.upgrade(rendered)
    return url, rendered


def set_based(engine: sa.Engine) -> dict[int, tuple]:
    with engine.begin() as conn:
        payouts_db.evaluate_eligibility(
            conn,
            payout_date=PAYOUT_DATE,
            as_of=AS_OF,
            minimum_tokens=RULES.minimum_tokens,
            token_rate=RULES.token_rate,
            currency=RULES.currency,
        )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT creator_id, payout_tokens, amount_minor FROM lending.payout_eligibility "
                "WHERE payout_date = :d AND reason IS NULL"
            ),
            {"d": PAYOUT_DATE},
        )
        return {row.creator_id: (row.payout_tokens, row.amount_minor) for row in rows}


def per_creator_loop(engine: sa.Engine) -> dict[int, tuple]:
    eligible: dict[int, tuple] = {}
    stored = []
    with engine.begin() as conn:
        ids = conn.execute(sa.text("SELECT id FROM lending.creators ORDER BY id")).scalars().all()
        for creator_id in ids:
            creator = conn.execute(CREATOR_SQL, {"id": creator_id}).one()
            entries = [
                LedgerEntry(e.tokens, e.created_at, e.available_at)
                for e in conn.execute(ENTRIES_SQL, {"id": creator_id})
            ]
            requests = [
                WithdrawalRequest(r.id, r.tokens, r.requested_at)
                for r in conn.execute(REQUESTS_SQL, {"id": creator_id})
            ]
            reserved = conn.execute(
                RESERVED_SQL, {"id": creator_id, "payout_date": PAYOUT_DATE}
            ).scalar_one()
            result = evaluate_creator(
                CreatorState(
                    creator_id=creator_id,
                    kyc_status=creator.kyc_status,
                    stripe_account_id=creator.stripe_account_id,
                    payouts_enabled=creator.payouts_enabled,
                    transfers_capability=creator.transfers_capability,
                    entries=entries,
                    pending_requests=requests,
                    reserved_tokens=int(reserved),
                ),
                RULES,
            )
            if result.eligible:
                eligible[creator_id] = (result.payout_tokens, result.amount_minor)
                stored.append(
                    {
                        "creator_id": creator_id,
                        "tokens": result.payout_tokens,
                        "amount": result.amount_minor,
                    }
                )
        conn.execute(
            sa.text(
                "CREATE TEMP TABLE loop_result (creator_id bigint, tokens bigint, amount bigint)"
            )
        )
        if stored:
            conn.execute(
                sa.text("INSERT INTO loop_result VALUES (:creator_id, :tokens, :amount)"), stored
            )
    return eligible


def bench_eligibility(settings: Settings, creators: int, entries: int) -> tuple[float, float]:
    url, rendered = scratch_database(settings)
    engine = sa.create_engine(rendered)
    try:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT setseed(0.42)"))
            conn.execute(LOAD_CREATORS, {"creators": creators})
            conn.execute(LOAD_LEDGER, {"as_of": AS_OF, "per_creator": entries // creators})
            conn.execute(LOAD_REQUESTS, {"as_of": AS_OF})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
            loaded = conn.execute(sa.text("SELECT count(*) FROM lending.ledger_entries")).scalar()
        print(
            f"loaded {creators} creators, {loaded} ledger entries "
            f"in {time.perf_counter() - started:.1f}s"
        )
        set_based(engine)  # warm up caches and plans
        timings = []
        for _ in range(SET_BASED_REPEATS):
            started = time.perf_counter()
            fast = set_based(engine)
            timings.append(time.perf_counter() - started)
        set_seconds = min(timings)
        started = time.perf_counter()
        slow = per_creator_loop(engine)
        loop_seconds = time.perf_counter() - started
        if fast != slow:
            differing = (
                sorted(set(fast) ^ set(slow))[:5] or [c for c in fast if fast[c] != slow.get(c)][:5]
            )
            raise SystemExit(f"set-based and loop results differ, e.g. for creators {differing}")
        print(
            f"eligible_creators: {len(fast)} of {creators}, "
            f"{sum(a for _, a in fast.values())} minor units"
        )
        print(f"eligibility_set_based_seconds: {set_seconds:.3f} (best of {SET_BASED_REPEATS})")
        print(f"eligibility_per_creator_loop_seconds: {loop_seconds:.3f}")
        return set_seconds, loop_seconds
    finally:
        engine.dispose()
        drop_database(url)


def serve_sandbox(port: int, accounts: int, limit: int) -> None:
    import uvicorn

    from lending_dev.sandbox.app import build_app

    app = build_app(
        {
            "stripe": {
                "accounts": [{"id": f"acct_bench{n:05d}"} for n in range(accounts)],
                "balance": {"usd": 10**12},
                "rate_limit_per_second": limit,
                "rate_limit_burst": limit,
            }
        },
        faults={},
        providers=["stripe"],
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


def wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_admin/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"sandbox at {url} did not start")


def bench_transfers(settings: Settings, transfers: int, rate: float) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = multiprocessing.get_context("spawn").Process(
        target=serve_sandbox, args=(port, transfers, STRIPE_LIMIT), daemon=True
    )
    server.start()
    url, rendered = scratch_database(settings)
    engine = sa.create_engine(rendered, pool_size=20)
    try:
        wait_until_up(base)
        with engine.begin() as conn:
            ids = payouts_db.upsert_creators(
                conn,
                [
                    {
                        "external_ref": f"t{n}",
                        "display_name": f"t{n}",
                        "kyc_status": "verified",
                        "stripe_account_id": f"acct_bench{n:05d}",
                        "payouts_enabled": True,
                        "transfers_capability": "active",
                    }
                    for n in range(transfers)
                ],
            )
            payouts_db.add_ledger_entries(
                conn,
                [
                    {
                        "creator_id": cid,
                        "entry_type": "earning",
                        "tokens": 200 + cid % 100,
                        "created_at": AS_OF - timedelta(days=10),
                    }
                    for cid in ids.values()
                ],
                hold_days=7,
            )
            payouts_db.evaluate_eligibility(
                conn,
                payout_date=PAYOUT_DATE,
                as_of=AS_OF,
                minimum_tokens=200,
                token_rate=Decimal("0.05"),
                currency="USD",
            )
            batch = payouts_db.create_batch(
                conn, payout_date=PAYOUT_DATE, chunk_size=settings.payout_chunk_size
            ).totals
        limiter = PostgresRateLimiter(engine, "stripe", rate)
        resource = StripeConnectResource(
            api_key="sk_test_bench_payouts_0001",
            api_base=f"{base}/stripe",
            rate_limit_max_retries=20,
            rate_limit_backoff_seconds=0.05,
        )
        reports = []
        workers = [
            threading.Thread(
                target=lambda: reports.append(
                    run_chunk_worker(
                        engine, batch.batch_id, resource.get_client(limiter), run_id="bench"
                    )
                )
            )
            for _ in range(settings.payout_max_concurrent_chunks)
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - started
        state = httpx.get(f"{base}/_admin/stripe", timeout=30).json()
        with engine.connect() as conn:
            totals = payouts_db.refresh_batch_totals(conn, batch.batch_id)
        duplicates = sum(n - 1 for n in state["transfers_per_transfer_group"].values())
        return {
            "paid": totals.paid_count,
            "transfers_at_stripe": state["transfer_count"],
            "seconds": seconds,
            "rate_limited": state["requests"].get("rate_limited", 0),
            "duplicates": duplicates,
        }
    finally:
        engine.dispose()
        drop_database(url)
        server.terminate()
        server.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creators", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=2_000_000)
    parser.add_argument("--transfers", type=int, default=2_000)
    parser.add_argument(
        "--rate",
        type=float,
        default=STRIPE_LIMIT,
        help="our shared request-rate limit (LENDING_STRIPE_REQUESTS_PER_SECOND)",
    )
    args = parser.parse_args()
    settings = Settings.from_env()

    result = bench_transfers(settings, args.transfers, args.rate)
    per_second = result["paid"] / result["seconds"]
    print(
        f"transfers: {result['paid']} paid, {result['transfers_at_stripe']} at Stripe, "
        f"in {result['seconds']:.1f}s; 429s met: {result['rate_limited']}"
    )
    print(f"transfers_per_second: {per_second:.2f} (sandbox limit {STRIPE_LIMIT}/s)")
    print(f"transfers_fraction_of_limit: {per_second / STRIPE_LIMIT:.2f}")
    print(f"duplicate_transfers: {result['duplicates']}")

    set_seconds, loop_seconds = bench_eligibility(settings, args.creators, args.entries)
    print(f"eligibility_ratio_vs_loop: {loop_seconds / set_seconds:.1f}")


if __name__ == "__main__":
    main()
