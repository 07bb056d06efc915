"""Idempotency under concurrency and crashes, checked in the sandbox's own ledger:
two runs of one payout date at the same time, and a worker killed mid-chunk after Stripe made a
transfer but before its status was written, then a re-run."""

from __future__ import annotations

import multiprocessing
import os
import types
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.resources.stripe_connect import StripeConnectResource
from lending_pipelines.workflows.payouts.processing import run_chunk_worker
from tests.e2e.test_payouts_e2e import (
    AS_OF,
    PARTITION_DATE,
    add_creator,
    assert_no_duplicate_transfers,
    items_by_ref,
    payout_resources,
    payout_settings,  # noqa: F401  (fixture)
    run_payouts,
    stripe_accounts,
    withdrawals,
)

CREATORS = 14
SPAWN = multiprocessing.get_context("spawn")


def _sandbox_at(base_url: str):
    return types.SimpleNamespace(url=lambda provider: f"{base_url}/{provider}")


def _make_world(engine, sandbox) -> None:
    stripe_accounts(sandbox, *[{"id": f"acct_e2e_c{n:02d}"} for n in range(CREATORS)])
    with engine.begin() as conn:
        for n in range(CREATORS):
            add_creator(
                conn,
                f"c{n:02d}",
                earnings=[(300 + 10 * n, AS_OF - timedelta(days=10))],
            )


def _run_in_child(db_url: str, sandbox_url: str, go, results) -> None:
    """A whole Dagster run of the payout date, in its own process."""
    resources = payout_resources(db_url, _sandbox_at(sandbox_url))
    go.wait(30)
    result = run_payouts(resources, raise_on_error=False)
    results.put(result.success)


@pytest.mark.slow
def test_two_runs_of_one_date_at_the_same_time_create_nothing_twice(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    _make_world(db, sandbox)
    go, results = SPAWN.Event(), SPAWN.Queue()
    children = [
        SPAWN.Process(target=_run_in_child, args=(db_url, sandbox.base_url, go, results))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    go.set()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(30)
    assert outcomes == [True, True]

    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == CREATORS
    with db.connect() as conn:
        counts = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM lending.payout_batches),"
                " (SELECT count(*) FROM lending.payout_items),"
                " (SELECT count(*) FROM lending.payout_items WHERE status = 'paid')"
            )
        ).one()
    assert tuple(counts) == (1, CREATORS, CREATORS)
    assert len(withdrawals(db)) == CREATORS


class CrashAfter:
    """Wraps a Stripe client: after `n` transfers were made at Stripe, the process dies before
    the caller can record the last one (like `kill -9` or an OOM kill mid-chunk)."""

    def __init__(self, client, n: int) -> None:
        self._client = client
        self._left = n

    def __getattr__(self, name):
        return getattr(self._client, name)

    def create_transfer(self, **kwargs):
        transfer = self._client.create_transfer(**kwargs)
        self._left -= 1
        if self._left == 0:
            os._exit(17)
        return transfer


def _crashing_worker(db_url: str, sandbox_url: str, batch_id: int, crash_after: int) -> None:
    engine = sa.create_engine(db_url)
    client = StripeConnectResource(
        api_key="sk_test_payouts_crash_000001", api_base=f"{sandbox_url}/stripe"
    ).get_client()
    run_chunk_worker(engine, batch_id, CrashAfter(client, crash_after), run_id="doomed-run")


def leased_chunks(engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [
            (row.last_run_id, row.chunk_no)
            for row in conn.execute(
                sa.select(payouts_db.payout_chunks).where(
                    payouts_db.payout_chunks.c.lease_until > sa.func.now()
                )
            )
        ]


def expire_chunk_leases(engine) -> None:
    """Time passing: the lease of a worker that died runs out."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(payouts_db.payout_chunks)
            .where(payouts_db.payout_chunks.c.lease_until.is_not(None))
            .values(lease_until=sa.func.now() - sa.text("interval '1 second'"))
        )


def test_a_run_killed_mid_chunk_then_rerun_pays_every_creator_exactly_once(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    _make_world(db, sandbox)
    resources = payout_resources(db_url, sandbox)
    run_payouts(resources, selection=["eligible_creators", "payout_batch"])
    with db.connect() as conn:
        batch = payouts_db.get_batch(conn, PARTITION_DATE)
    # chunk size 3: the 5th transfer is the second item of the second chunk
    child = SPAWN.Process(
        target=_crashing_worker, args=(db_url, sandbox.base_url, batch.batch_id, 5)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 17

    made = sandbox.state("stripe")["transfer_count"]
    statuses = [row.status for row in items_by_ref(db).values()]
    assert made == 5
    assert statuses.count("paid") == 4  # the 5th transfer exists at Stripe, not in our books
    assert statuses.count("processing") == 2  # the rest of the killed worker's chunk
    # the dead worker's chunk lease is all that is left of it (no session, no transaction)
    assert leased_chunks(db) == [("doomed-run", 1)]
    expire_chunk_leases(db)  # LENDING_PAYOUT_LEASE_SECONDS later

    rerun = run_payouts(resources)
    assert rerun.success
    state = assert_no_duplicate_transfers(sandbox)
    assert state["transfer_count"] == CREATORS
    assert state["requests"]["replayed"] == 1  # the orphaned transfer, answered from the store
    items = items_by_ref(db)
    assert {row.status for row in items.values()} == {"paid"}
    transfer_ids = {t["id"] for t in state["transfers"]}
    assert {row.stripe_transfer_id for row in items.values()} == transfer_ids
    assert sorted(e.reference for e in withdrawals(db)) == sorted(transfer_ids)
    with db.connect() as conn:
        assert payouts_db.get_batch(conn, PARTITION_DATE).status == "completed"
