"""Crash tests: a run killed (SIGKILL) right after a Blnk post, before its local record, then
the next day's run and re-runs of both days. Nothing moves twice, nothing is lost, no debt goes
below zero — asserted on the sandbox ledger's balances and transactions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from lending_dev.seed.escrow import ESCROW_POOL, WHOLESALERS, wallet_balance_id
from lending_pipelines.assets.escrow.partitions import TIMEZONE
from lending_pipelines.db.escrow import escrow_releases, release_integrity_problems, repayments
from lending_pipelines.settings import PROJECT_ROOT
from tests.e2e import test_escrow_workflow as workflow
from tests.e2e.test_escrow_workflow import debts, escrow_status, ledger, run_job

seeded, defs = workflow.seeded, workflow.defs  # fixtures

TODAY = datetime.now(ZoneInfo(TIMEZONE)).date()
YESTERDAY = TODAY - timedelta(days=1)

CRASHING_RUN = textwrap.dedent(
    """
    import os, signal
    import dagster as dg
    from lending_pipelines.assets.escrow.assets import ESCROW_ASSETS
    from lending_pipelines.assets.escrow.jobs import ESCROW_JOBS
    from lending_pipelines.partners.blnk import BlnkClient
    from lending_pipelines.resources.blnk import BlnkResource
    from lending_pipelines.resources.database import DatabaseResource
    from lending_pipelines.resources.escrow_config import EscrowConfig
    from lending_pipelines.settings import get_settings

    real_post = BlnkClient.create_transaction
    posted = []

    def post_then_die(self, **kwargs):
        answer = real_post(self, **kwargs)  # Blnk has moved the money...
        posted.append(kwargs["reference"])
        if len(posted) == int(os.environ["CRASH_AFTER_POSTS"]):
            os.kill(os.getpid(), signal.SIGKILL)  # ...and the process dies before recording it
        return answer

    BlnkClient.create_transaction = post_then_die
    defs = dg.Definitions(
        assets=ESCROW_ASSETS,
        jobs=ESCROW_JOBS,
        resources={
            "database": DatabaseResource(url=os.environ["DB_URL"]),
            "blnk": BlnkResource(base_url=os.environ["BLNK_URL"], backoff_seconds=0.01),
            "escrow_config": EscrowConfig.from_settings(get_settings()),
        },
    )
    defs.resolve_job_def(os.environ["JOB"]).execute_in_process(
        partition_key=os.environ["PARTITION"], instance=dg.DagsterInstance.ephemeral()
    )
    raise SystemExit("the run was expected to be killed")
    """
)


def crash(db_url: str, sandbox, job: str, partition: str, after_posts: int) -> None:
    env = dict(
        os.environ,
        DB_URL=db_url,
        BLNK_URL=sandbox.url("blnk"),
        JOB=job,
        PARTITION=partition,
        CRASH_AFTER_POSTS=str(after_posts),
    )
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN], env=env, cwd=PROJECT_ROOT, capture_output=True,
        timeout=180,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-3000:]


def references(sandbox, prefix: str) -> Counter:
    return Counter(
        t["reference"]
        for t in sandbox.state("blnk")["transactions"]
        if t["reference"].startswith(prefix)
    )


def test_an_escrow_release_killed_after_a_post_then_the_next_day_and_reruns_release_each_once(
    seeded, defs, sandbox, db_url
):
    before = ledger(sandbox)
    crash(db_url, sandbox, "escrow_release_job", YESTERDAY.isoformat(), after_posts=2)
    assert sum(references(sandbox, "escrow-release:").values()) == 2
    with seeded.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(escrow_releases)).scalar() == 1

    for day in (TODAY, YESTERDAY, TODAY):  # the next day's run, then re-runs of both days
        assert run_job(defs, "escrow_release_job", partition_key=day.isoformat()).success

    after = ledger(sandbox)
    assert before[ESCROW_POOL] - after[ESCROW_POOL] == 260_000
    assert after[WHOLESALERS["W-001"]] - before[WHOLESALERS["W-001"]] == 170_000
    assert after[WHOLESALERS["W-002"]] - before[WHOLESALERS["W-002"]] == 90_000
    assert set(references(sandbox, "escrow-release:").values()) == {1}
    state = sandbox.state("blnk")
    assert len(state["rejected_duplicates"]) == 1  # only the crashed post was sent again
    statuses = escrow_status(seeded)
    assert [statuses[o] for o in ("ORD-1001", "ORD-1002", "ORD-1006")] == ["released"] * 3
    with seeded.connect() as conn:
        assert release_integrity_problems(conn) == []
        recovered = conn.execute(
            sa.select(sa.func.count())
            .select_from(escrow_releases)
            .where(escrow_releases.c.recovered)
        ).scalar()
    assert recovered == 1


def test_an_auto_deduct_killed_after_a_post_then_the_next_day_and_reruns_deduct_each_once(
    seeded, defs, sandbox, db_url
):
    before_ledger, before_debts = ledger(sandbox), debts(seeded)
    crash(db_url, sandbox, "auto_deduct_job", YESTERDAY.isoformat(), after_posts=2)
    assert sum(references(sandbox, "auto-deduct:").values()) == 2  # moved

    for day in (TODAY, YESTERDAY, TODAY):  # the next day's run, then re-runs of both days
        assert run_job(defs, "auto_deduct_job", partition_key=day.isoformat()).success

    # Yesterday's four deductions, then today's computed from what they left.
    expected = {"R-001": 30_000 + 21_000, "R-002": 20_000 + 20_000, "R-003": 15_000,
                "R-009": 5_000 + 2_500}  # fmt: skip
    after_ledger, after_debts = ledger(sandbox), debts(seeded)
    for retailer, amount in expected.items():
        wallet = wallet_balance_id(retailer)
        assert before_ledger[wallet] - after_ledger[wallet] == amount, retailer
        assert before_debts[retailer] - after_debts[retailer] == amount, retailer
    assert set(references(sandbox, "auto-deduct:").values()) == {1}
    assert sandbox.state("blnk")["rejected_duplicates"] == [f"auto-deduct:R-002:{YESTERDAY}"]
    with seeded.connect() as conn:
        rows = conn.execute(sa.select(repayments.c.status, repayments.c.recovered)).all()
    assert Counter(rows) == {("applied", False): 6, ("applied", True): 1}
    assert all(debt >= 0 for retailer, debt in after_debts.items() if retailer != "R-007")
