"""A payout worker SIGKILLed between Stripe's transfer and our write, then the next payout date's
run, then the re-run of the crashed date: nothing paid twice, nothing lost."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import UTC, date, datetime

import sqlalchemy as sa

from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.resources.stripe_connect import StripeConnectResource
from lending_pipelines.workflows.payouts.processing import run_chunk_worker
from tests.e2e.test_payouts_e2e import (
    add_creator,
    payout_resources,
    payout_settings,  # noqa: F401  (fixture)
    run_payouts,
    stripe_accounts,
    withdrawals,
)
from tests.e2e.test_payouts_idempotency import expire_chunk_leases, leased_chunks

CRASHED, NEXT = "2026-01-01", "2026-01-15"
CREATORS = 6
SPAWN = multiprocessing.get_context("spawn")


class KillAfterTransfer:
    """After the n-th transfer Stripe made, the worker process is SIGKILLed before it can write
    anything about it."""

    def __init__(self, client, n: int) -> None:
        self._client = client
        self._left = n

    def __getattr__(self, name):
        return getattr(self._client, name)

    def create_transfer(self, **kwargs):
        transfer = self._client.create_transfer(**kwargs)
        self._left -= 1
        if self._left == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return transfer


def _killed_worker(db_url: str, sandbox_url: str, batch_id: int) -> None:
    engine = sa.create_engine(db_url)
    client = StripeConnectResource(
        api_key="sk_test_payouts_sigkill_0001", api_base=f"{sandbox_url}/stripe"
    ).get_client()
    run_chunk_worker(engine, batch_id, KillAfterTransfer(client, 5), run_id="killed-run")


def test_a_payout_killed_between_stripe_and_our_write_then_next_date_and_rerun_pay_once(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    stripe_accounts(sandbox, *[{"id": f"acct_e2e_k{n}"} for n in range(CREATORS)])
    with db.begin() as conn:
        for n in range(CREATORS):
            add_creator(
                conn,
                f"k{n}",
                earnings=[
                    (300, datetime(2025, 12, 20, tzinfo=UTC)),  # for 2026-01-01
                    (250, datetime(2026, 1, 5, tzinfo=UTC)),  # for 2026-01-15
                ],
            )
    resources = payout_resources(db_url, sandbox)
    assert run_payouts(resources, CRASHED, selection=["eligible_creators", "payout_batch"]).success
    with db.connect() as conn:
        batch = payouts_db.get_batch(conn, date.fromisoformat(CRASHED))
    child = SPAWN.Process(target=_killed_worker, args=(db_url, sandbox.base_url, batch.batch_id))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert sandbox.state("stripe")["transfer_count"] == 5  # the 5th is unknown to our books
    assert len(withdrawals(db)) == 4
    assert leased_chunks(db) == [("killed-run", 1)]

    # the next payout date runs before anyone looks at the crash: it pays only what the
    # crashed date did not claim (the crashed date's open items keep their tokens)
    assert run_payouts(resources, NEXT).success
    state = sandbox.state("stripe")
    assert state["transfer_count"] == 5 + CREATORS
    assert {t["amount"] for t in state["transfers"][5:]} == {1_250}  # 250 tokens each

    expire_chunk_leases(db)  # LENDING_PAYOUT_LEASE_SECONDS later
    assert run_payouts(resources, CRASHED).success
    state = sandbox.state("stripe")
    assert state["duplicate_transfer_groups"] == []
    assert state["transfer_count"] == 2 * CREATORS
    assert state["requests"]["replayed"] == 1  # the killed worker's transfer, replayed
    paid: dict[str, int] = {}
    for transfer in state["transfers"]:
        paid[transfer["destination"]] = paid.get(transfer["destination"], 0) + transfer["amount"]
    assert paid == {f"acct_e2e_k{n}": 2_750 for n in range(CREATORS)}  # 550 tokens, once
    entries = withdrawals(db)
    assert sorted(e.reference for e in entries) == sorted(t["id"] for t in state["transfers"])
    with db.connect() as conn:
        statuses = {
            day: payouts_db.get_batch(conn, date.fromisoformat(day)).status
            for day in (CRASHED, NEXT)
        }
    assert statuses == {CRASHED: "completed", NEXT: "completed"}


def test_the_next_run_frees_the_chunk_lease_of_a_run_dagster_reports_ended(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    """No waiting for the lease to run out when the instance knows the holder's run ended."""
    from dagster import DagsterInstance

    stripe_accounts(sandbox, *[{"id": f"acct_e2e_k{n}"} for n in range(3)])
    with db.begin() as conn:
        for n in range(3):
            add_creator(conn, f"k{n}", earnings=[(300, datetime(2025, 12, 20, tzinfo=UTC))])
    resources = payout_resources(db_url, sandbox)
    instance = DagsterInstance.ephemeral()
    ended = run_payouts(
        resources, CRASHED, selection=["eligible_creators", "payout_batch"], instance=instance
    )
    with db.begin() as conn:  # as if that run's worker had been killed holding the chunk
        conn.execute(
            sa.update(payouts_db.payout_chunks).values(
                leased_by=f"{ended.run_id}:dead",
                last_run_id=ended.run_id,
                lease_until=sa.func.now() + sa.text("interval '1 hour'"),
            )
        )
    assert run_payouts(resources, CRASHED, instance=instance).success
    assert sandbox.state("stripe")["transfer_count"] == 3
    assert leased_chunks(db) == []
