"""Loan polling: 50 partners x 1,000 approved loans with 100 ms added latency per request.

Measured in one run, through the same code the `loan_tracking` asset runs
(`workflows.loans.polling.run_polling_cycle`: open poll attempts, poll, and per partner one upsert
statement for all its loans plus closing its attempt):

* the polling cycle as configured: partners polled concurrently, pages after the first one
  fetched concurrently per partner (`--repeats` cycles, each into an emptied table; the
  median is printed and compared);
* the same work sequentially: one partner and one page at a time (concurrency 1, page
  concurrency 1), into an emptied table so it inserts the same 50,000 rows.

The sandbox runs in its own process (as a partner's server would), the database is a scratch
database on the embedded (or configured) server.

    uv run python -m bench.polling [--partners 50] [--loans 1000] [--latency-ms 100]

Last line: `ratio_vs_sequential: N` (target: cycle <= 3 s and ratio >= 10).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid

import sqlalchemy as sa
from cryptography.fernet import Fernet

from lending_dev.sandbox.server import free_port
from lending_pipelines.crypto import SecretBox
from lending_pipelines.db import loans as loans_db
from lending_pipelines.db import migrate
from lending_pipelines.db.server import drop_database, ensure_database, server_url
from lending_pipelines.resources.fineract import FineractResource
from lending_pipelines.settings import Settings
from lending_pipelines.workflows.loans.polling import run_polling_cycle


def serve_sandbox(port: int, partners: int, loans: int, latency_ms: int) -> None:
    import uvicorn

    from lending_dev.sandbox.app import build_app

    tenants = [
        {"id": f"p{n:02d}", "password": f"pw{n}", "loans": loans, "invalid_phone_every": 0}
        for n in range(partners)
    ]
    app = build_app(
        {"fineract": {"tenants": tenants}},
        faults={"fineract": {"latency_ms": latency_ms}},
        providers=["fineract"],
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=4096)


def wait_until_up(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_admin/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"sandbox on {url} did not start")


def add_partners(engine: sa.Engine, box: SecretBox, base_url: str, partners: int) -> None:
    with engine.begin() as conn:
        for n in range(partners):
            loans_db.save_partner(
                conn,
                loans_db.PartnerSetup(
                    id=f"p{n:02d}",
                    name=f"Partner {n}",
                    fineract_base_url=f"{base_url}/fineract",
                    fineract_tenant_id=f"p{n:02d}",
                    fineract_username="mifos",
                    fineract_password=f"pw{n}",
                ),
                box,
            )


def tracked(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(loans_db.loan_tracking)).scalar()


def empty_tracking(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE lending.loan_tracking, lending.poll_attempts CASCADE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partners", type=int, default=50)
    parser.add_argument("--loans", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="partners at once (LENDING_POLL_CONCURRENCY)"
    )
    parser.add_argument("--page-size", type=int, default=None)
    parser.add_argument("--page-concurrency", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5, help="cycles timed (median printed)")
    args = parser.parse_args()
    expected = args.partners * args.loans

    settings = Settings.from_env()
    concurrency = args.concurrency or settings.poll_concurrency
    url = server_url(settings).set(database=f"lending_bench_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    rendered = url.render_as_string(hide_password=False)
    port = free_port()
    sandbox = multiprocessing.get_context("spawn").Process(
        target=serve_sandbox,
        args=(port, args.partners, args.loans, args.latency_ms),
        daemon=True,
    )
    sandbox.start()
    engine = sa.create_engine(rendered)
    try:
        migrate.upgrade(rendered)
        base_url = f"http://127.0.0.1:{port}"
        wait_until_up(base_url)
        box = SecretBox(Fernet.generate_key().decode())
        add_partners(engine, box, base_url, args.partners)
        tuned = {
            k: v
            for k, v in (("page_size", args.page_size), ("page_concurrency", args.page_concurrency))
            if v
        }
        configured = FineractResource(timeout_seconds=30, **tuned)

        cycles = []
        for _ in range(args.repeats):  # each into an emptied table: 50,000 inserts, like below
            empty_tracking(engine)
            cycle = run_polling_cycle(
                engine, box, configured, concurrency=concurrency, timeout_seconds=60
            )
            assert not cycle.failed, [poll.error for poll in cycle.failed]
            assert cycle.loans_seen == expected == tracked(engine) == cycle.new_loans
            cycles.append(cycle)
        cycle = sorted(cycles, key=lambda c: c.seconds)[len(cycles) // 2]  # the median one

        empty_tracking(engine)
        one_at_a_time = FineractResource(
            timeout_seconds=30, page_size=configured.page_size, page_concurrency=1
        )
        sequential = run_polling_cycle(
            engine, box, one_at_a_time, concurrency=1, timeout_seconds=600
        )
        assert not sequential.failed, [poll.error for poll in sequential.failed]
        assert sequential.loans_seen == expected == tracked(engine)

        pages = sum(poll.pages for poll in cycle.polls)
        print(f"partners: {args.partners}, loans per partner: {args.loans}, pages: {pages}")
        print(
            f"added latency per request: {args.latency_ms} ms, page size: {configured.page_size}, "
            f"partners at once: {concurrency}, pages at once per partner: "
            f"{configured.page_concurrency}"
        )
        print(f"loans tracked: {tracked(engine)} (one upsert statement per partner)")
        print(f"slowest partner in the cycle: {max(p.seconds for p in cycle.polls):.3f} s")
        print("cycles: " + ", ".join(f"{c.seconds:.2f}" for c in cycles) + " s (median below)")
        print(f"polling_cycle_seconds: {cycle.seconds:.3f}")
        print(f"sequential_seconds: {sequential.seconds:.3f}")
        print(f"ratio_vs_sequential: {sequential.seconds / cycle.seconds:.1f}")
    finally:
        engine.dispose()
        sandbox.terminate()
        sandbox.join(timeout=10)
        drop_database(url)


if __name__ == "__main__":
    main()
