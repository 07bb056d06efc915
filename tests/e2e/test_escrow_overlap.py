"""Two escrow-day partitions (yesterday and today) running at the same time, as a UI backfill
runs them: one run per partition through the implicit asset job, concurrently, without the
jobs' serial tags. The database (row locks per escrow and repayment, one pending repayment per
wallet, intents only on an unchanged debt) keeps them from moving anything twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa

from lending_dev.seed.escrow import ESCROW_POOL, wallet_balance_id
from lending_pipelines.assets.escrow.assets import auto_deductions, escrow_releases
from lending_pipelines.assets.escrow.partitions import TIMEZONE
from lending_pipelines.db.escrow import auto_deduct_settings, release_integrity_problems, repayments
from lending_pipelines.resources.blnk import BlnkResource
from lending_pipelines.resources.escrow_config import EscrowConfig
from lending_pipelines.settings import get_settings
from tests.e2e import test_escrow_workflow as workflow
from tests.e2e.test_escrow_workflow import debts, escrow_status, ledger

seeded = workflow.seeded  # fixture

TODAY = datetime.now(ZoneInfo(TIMEZONE)).date()
YESTERDAY = TODAY - timedelta(days=1)


def materialize_together(asset, database, sandbox) -> list[dg.ExecuteInProcessResult]:
    """Both partitions at once, each in its own thread, Blnk slowed so that they overlap."""
    sandbox.set_faults({"blnk": {"latency_ms": 150}})
    start = threading.Barrier(2)
    results: dict[str, dg.ExecuteInProcessResult] = {}
    errors: list[BaseException] = []

    def run(partition: str) -> None:
        blnk = BlnkResource(base_url=sandbox.url("blnk"), backoff_seconds=0.01)
        try:
            start.wait()
            results[partition] = dg.materialize(
                [asset],
                partition_key=partition,
                resources={
                    "database": database,
                    "blnk": blnk,
                    "escrow_config": EscrowConfig.from_settings(get_settings()),
                },
                instance=dg.DagsterInstance.ephemeral(),
                raise_on_error=False,
            )
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)
        finally:
            blnk.close()

    threads = [threading.Thread(target=run, args=(day.isoformat(),)) for day in (YESTERDAY, TODAY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    sandbox.clear_faults()
    assert not errors, errors
    return list(results.values())


def references(sandbox, prefix: str) -> Counter:
    return Counter(
        t["reference"]
        for t in sandbox.state("blnk")["transactions"]
        if t["reference"].startswith(prefix)
    )


def test_two_release_days_running_at_once_release_each_escrow_once(seeded, database, sandbox):
    before = ledger(sandbox)
    results = materialize_together(escrow_releases, database, sandbox)
    assert [r.success for r in results] == [True, True]
    assert before[ESCROW_POOL] - ledger(sandbox)[ESCROW_POOL] == 260_000
    assert set(references(sandbox, "escrow-release:").values()) == {1}
    state = sandbox.state("blnk")
    # The escrow row lock kept the second run from even posting what the first was releasing.
    assert state["rejected_duplicates"] == [] and set(state["post_attempts"].values()) == {1}
    statuses = escrow_status(seeded)
    assert [statuses[o] for o in ("ORD-1001", "ORD-1002", "ORD-1006")] == ["released"] * 3
    with seeded.connect() as conn:
        assert release_integrity_problems(conn) == []


def test_two_deduct_days_running_at_once_never_take_more_than_the_debt(seeded, database, sandbox):
    with seeded.begin() as conn:  # R-001's whole debt (100,000) in one day
        conn.execute(
            sa.update(auto_deduct_settings)
            .where(auto_deduct_settings.c.retailer_id == "R-001")
            .values(percentage=100, max_daily_amount=None)
        )
    before_ledger, before_debts = ledger(sandbox), debts(seeded)
    results = materialize_together(auto_deductions, database, sandbox)
    assert [r.success for r in results] == [True, True]

    after_ledger, after_debts = ledger(sandbox), debts(seeded)
    wallet = wallet_balance_id("R-001")
    assert before_ledger[wallet] - after_ledger[wallet] == 100_000  # once, not once per day
    assert after_debts["R-001"] == 0
    with seeded.connect() as conn:
        rows = conn.execute(
            sa.select(repayments.c.retailer_id, repayments.c.status, repayments.c.amount)
        ).all()
    assert {status for _, status, _ in rows} == {"applied"}
    applied = Counter()
    for retailer, _, amount in rows:
        applied[retailer] += amount
    for retailer, amount in applied.items():
        moved = (
            before_ledger[wallet_balance_id(retailer)] - after_ledger[wallet_balance_id(retailer)]
        )
        assert moved == amount == before_debts[retailer] - after_debts[retailer], retailer
    assert set(references(sandbox, "auto-deduct:").values()) == {1}
    assert all(debt >= 0 for retailer, debt in after_debts.items() if retailer != "R-007")
