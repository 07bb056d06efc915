"""Different payout dates at the same time: a creator's tokens are claimed once, whatever runs
overlap. Three dates are backfilled at once (three runs of the implicit asset job, one per
partition, like a UI backfill without our serial tag) or as one sequence; every repetition must
leave the sandbox's Stripe ledger with each creator paid exactly their earned tokens."""

from __future__ import annotations

import multiprocessing
import threading
import types
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, Definitions

from lending_pipelines.assets.payouts.assets import PAYOUT_ASSETS
from lending_pipelines.assets.payouts.checks import PAYOUT_CHECKS
from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.resources.stripe_connect import StripeConnectResource
from lending_pipelines.workflows.payouts.processing import run_chunk_worker
from tests.conftest import truncate_all
from tests.e2e.test_payouts_e2e import (
    add_creator,
    payout_resources,
    payout_settings,  # noqa: F401  (fixture)
    stripe_accounts,
    withdrawals,
)

PARTITIONS = ("2026-01-01", "2026-01-15", "2026-02-01")
DATES = tuple(date.fromisoformat(p) for p in PARTITIONS)
CREATORS = 5
# One earning available by each date (7-day hold): every date has something of its own to pay,
# and every earning is above the 200-token minimum, so whatever order the dates claim in, each
# creator is paid 300 + 250 + 220 = 770 tokens = 38.50 USD in total, never more.
EARNINGS = (
    (300, datetime(2025, 12, 20, tzinfo=UTC)),
    (250, datetime(2026, 1, 5, tzinfo=UTC)),
    (220, datetime(2026, 1, 20, tzinfo=UTC)),
)
EXPECTED_MINOR = 3_850
REPETITIONS = 20
SPAWN = multiprocessing.get_context("spawn")


def _as_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 2, tzinfo=UTC)


def _make_world(engine, sandbox, *, accounts_ready: bool) -> None:
    stripe_accounts(sandbox, *[{"id": f"acct_e2e_o{n}"} for n in range(CREATORS)])
    with engine.begin() as conn:
        for n in range(CREATORS):
            creator_id = add_creator(conn, f"o{n}", earnings=list(EARNINGS))
            if accounts_ready:  # as eligible_creators' refresh would have left them
                conn.execute(
                    sa.update(payouts_db.creators)
                    .where(payouts_db.creators.c.id == creator_id)
                    .values(payouts_enabled=True, transfers_capability="active")
                )


def _evaluate(engine, day: date) -> None:
    with engine.begin() as conn:
        payouts_db.evaluate_eligibility(
            conn,
            payout_date=day,
            as_of=_as_of(day),
            minimum_tokens=200,
            token_rate=Decimal("0.05"),
            currency="usd",
        )


def _at_once(targets) -> None:
    """Run the callables in threads released together; re-raise the first failure."""
    gate = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(target):
        def go():
            gate.wait(10)
            try:
                target()
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)

        return go

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]


def assert_each_token_paid_once(engine, sandbox, label: str) -> None:
    state = assert_no_duplicate_transfers_per_group(sandbox)
    paid: dict[str, int] = {}
    for transfer in state["transfers"]:
        paid[transfer["destination"]] = paid.get(transfer["destination"], 0) + transfer["amount"]
    assert paid == {f"acct_e2e_o{n}": EXPECTED_MINOR for n in range(CREATORS)}, label
    per_creator: dict[int, int] = {}
    for entry in withdrawals(engine):
        per_creator[entry.creator_id] = per_creator.get(entry.creator_id, 0) + entry.tokens
    assert sorted(per_creator.values()) == [-770] * CREATORS, label


def assert_no_duplicate_transfers_per_group(sandbox) -> dict:
    state = sandbox.state("stripe")
    assert state["duplicate_transfer_groups"] == []
    return state


@pytest.mark.slow
def test_three_payout_dates_claimed_at_once_pay_each_token_once(
    db,
    sandbox,
    payout_settings,  # noqa: F811
):
    """20 repetitions of the batch-creation race on the real database: the three dates are
    evaluated first (so every evaluation is stale by the time the others freeze theirs), then
    `create_batch` — what the `payout_batch` asset runs — is called for the three dates from
    three threads released together, and the three batches are paid by three concurrent chunk
    workers (`run_chunk_worker`, what `payout_transfers` runs) against the sandbox."""
    client = StripeConnectResource(
        api_key="sk_test_payouts_overlap_01", api_base=sandbox.url("stripe")
    ).get_client()
    for repetition in range(REPETITIONS):
        truncate_all(db)
        sandbox.reset()
        _make_world(db, sandbox, accounts_ready=True)
        for day in DATES:
            _evaluate(db, day)

        def create(day: date):
            def go():
                with db.begin() as conn:
                    payouts_db.create_batch(conn, payout_date=day, chunk_size=3)

            return go

        _at_once([create(day) for day in DATES])
        with db.connect() as conn:
            batch_ids = [payouts_db.get_batch(conn, day).batch_id for day in DATES]

        def pay(batch_id: int, run_id: str):
            return lambda: run_chunk_worker(db, batch_id, client, run_id=run_id)

        _at_once([pay(batch_id, f"rep-{repetition}") for batch_id in batch_ids])
        assert_each_token_paid_once(db, sandbox, f"repetition {repetition}")


def _sandbox_at(base_url: str):
    return types.SimpleNamespace(url=lambda provider: f"{base_url}/{provider}")


def _implicit_asset_job(resources: dict):
    """The job the UI's Materialize button and partition backfills run: no serial tag."""
    defs = Definitions(assets=PAYOUT_ASSETS, asset_checks=PAYOUT_CHECKS, resources=resources)
    return defs.resolve_implicit_global_asset_job_def()


def _partition_worker(db_url: str, sandbox_url: str, partition: str, gate, orders, results):
    """One backfill "run" per order, for one partition, in its own long-lived process (the code
    location is imported once; each repetition is a fresh run of the implicit asset job)."""
    from lending_pipelines.settings import get_settings

    get_settings.cache_clear()
    job = _implicit_asset_job(payout_resources(db_url, _sandbox_at(sandbox_url)))
    results.put(("ready", partition))
    while orders.get() is not None:
        gate.wait(60)  # the three runs start together
        result = job.execute_in_process(
            partition_key=partition, instance=DagsterInstance.ephemeral(), raise_on_error=False
        )
        results.put((partition, result.success))


@pytest.mark.slow(seconds=60)
def test_three_payout_dates_backfilled_at_once_pay_each_token_once(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    """The full Dagster path, 20 times: three processes, each running the implicit asset job
    (eligible_creators → payout_batch + its blocking checks → payout_transfers) for its own
    partition, started together against the shared database and sandbox — what a UI backfill
    of three dates does, without our serial tag. Each repetition starts from a fresh world."""
    gate = SPAWN.Barrier(len(PARTITIONS))
    orders = [SPAWN.Queue() for _ in PARTITIONS]
    results = SPAWN.Queue()
    children = [
        SPAWN.Process(
            target=_partition_worker,
            args=(db_url, sandbox.base_url, partition, gate, queue, results),
        )
        for partition, queue in zip(PARTITIONS, orders, strict=True)
    ]
    for child in children:
        child.start()
    try:
        assert {results.get(timeout=240) for _ in children} == {("ready", p) for p in PARTITIONS}
        for repetition in range(REPETITIONS):
            truncate_all(db)
            sandbox.reset()
            _make_world(db, sandbox, accounts_ready=False)
            for queue in orders:
                queue.put(repetition)
            outcomes = dict(results.get(timeout=120) for _ in children)
            assert outcomes == dict.fromkeys(PARTITIONS, True), f"repetition {repetition}"
            assert_each_token_paid_once(db, sandbox, f"three runs, repetition {repetition}")
    finally:
        for queue in orders:
            queue.put(None)
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()


def test_three_payout_dates_backfilled_as_one_sequence_pay_each_token_once(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    """The backfill as one run of the sequence (the assets have no single-run backfill policy):
    every date evaluated first, then each date's batch and transfers through the implicit asset
    job — the evaluations of the later dates are stale when their batches are created."""
    _make_world(db, sandbox, accounts_ready=False)
    job = _implicit_asset_job(payout_resources(db_url, sandbox))
    instance = DagsterInstance.ephemeral()
    for partition in PARTITIONS:
        subset = job.get_subset(asset_selection={AssetKey("eligible_creators")})
        assert subset.execute_in_process(partition_key=partition, instance=instance).success
    rest = {AssetKey("payout_batch"), AssetKey("payout_transfers")}
    for partition in PARTITIONS:
        subset = job.get_subset(asset_selection=rest)
        assert subset.execute_in_process(partition_key=partition, instance=instance).success
    assert_each_token_paid_once(db, sandbox, "one sequence")


def test_no_creator_twice_blocks_transfers_when_open_items_of_other_dates_overdraw(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    """The blocking check looks across batches: if another date holds an open item that, with
    this batch's, claims more tokens than the creator has, nothing of this batch is sent."""
    _make_world(db, sandbox, accounts_ready=False)
    job = _implicit_asset_job(payout_resources(db_url, sandbox))
    instance = DagsterInstance.ephemeral()
    first = job.get_subset(
        asset_selection={AssetKey("eligible_creators"), AssetKey("payout_batch")}
    )
    assert first.execute_in_process(partition_key=PARTITIONS[2], instance=instance).success
    with db.begin() as conn:  # an item of another date appears that claims the same tokens
        other = conn.execute(
            sa.insert(payouts_db.payout_batches)
            .values(
                payout_date=DATES[0], batch_hash="manual-overlap", currency="usd", token_rate=0.05
            )
            .returning(payouts_db.payout_batches.c.id)
        ).scalar_one()
        conn.execute(
            sa.text(
                """
                INSERT INTO lending.payout_items (batch_id, creator_id, idempotency_key, chunk_no,
                    tokens, amount_minor, currency, destination_account)
                SELECT :other, creator_id, 'manual:' || creator_id, 0, tokens, amount_minor,
                       currency, destination_account
                FROM lending.payout_items WHERE batch_id <> :other
                """
            ),
            {"other": other},
        )
    rest = job.get_subset(asset_selection={AssetKey("payout_batch"), AssetKey("payout_transfers")})
    result = rest.execute_in_process(
        partition_key=PARTITIONS[2], instance=instance, raise_on_error=False
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_creator_twice"] is False
    assert sandbox.state("stripe")["transfer_count"] == 0
