"""Crash test: a run killed (SIGKILL) after a B2C request was sent but before its outcome was
written, then re-run and followed by a retry-schedule tick, pays nobody twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import dagster as dg

from lending_pipelines.assets.loans_automation import disbursement_retry_schedule
from lending_pipelines.settings import PROJECT_ROOT
from tests.loans_world import *  # noqa: F403

CRASHING_RUN = textwrap.dedent(
    """
    import os, signal
    import httpx, sqlalchemy as sa
    from lending_pipelines.resources import mpesa
    from tests.conftest import SandboxHandle
    from tests.loans_world import LoansWorld

    real_b2c = mpesa.MpesaClient.b2c_payment
    sent = []

    def b2c_then_die(self, **kwargs):
        ack = real_b2c(self, **kwargs)  # Daraja has accepted the payment...
        sent.append(ack)
        if len(sent) == int(os.environ["CRASH_AFTER_PAYMENTS"]):
            os.kill(os.getpid(), signal.SIGKILL)  # ...and the process dies before recording it
        return ack

    mpesa.MpesaClient.b2c_payment = b2c_then_die
    url = os.environ["SANDBOX_URL"]
    sandbox = SandboxHandle(url, httpx.Client(base_url=url))
    world = LoansWorld(
        engine=sa.create_engine(os.environ["DB_URL"]),
        db_url=os.environ["DB_URL"],
        sandbox=sandbox,
        receiver_url=os.environ["RECEIVER_URL"],
    )
    world.run("loan_polling_job")
    raise SystemExit("the run was expected to be killed")
    """
)


def test_a_run_killed_after_sending_a_b2c_then_rerun_and_retried_pays_nobody_twice(world):
    world.sandbox.configure(
        "fineract",
        {
            "tenants": [
                {"id": "acme", "password": "acme-pass", "loans": 5, "invalid_phone_every": 0}
            ]
        },
    )
    world.add_partner("acme")
    env = dict(
        os.environ,
        CRASH_AFTER_PAYMENTS="3",
        SANDBOX_URL=world.sandbox.base_url,
        DB_URL=world.db_url,
        RECEIVER_URL=world.receiver_url,
    )
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN], env=env, cwd=PROJECT_ROOT, capture_output=True,
        timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]

    # the third payment went out, but the database only knows an attempt was started
    assert len(world.sandbox.state("mpesa")["payments"]) == 3
    statuses = [(r.status, r.attempt_started_at is not None) for r in world.requests()]
    assert statuses == [
        ("submitted", True), ("submitted", True), ("pending", True), ("pending", False),
        ("pending", False),
    ]  # fmt: skip
    crashed_request = world.requests()[2]

    # re-run, then the retry schedule ticks, then the callbacks are applied
    assert world.run("loan_polling_job").success
    tick = disbursement_retry_schedule(
        dg.build_schedule_context(
            resources=world.resources(), scheduled_execution_time=datetime.now(UTC)
        )
    )
    assert isinstance(tick, dg.RunRequest)
    assert world.run("disbursement_retry_job").success
    world.apply_results()

    requests = world.requests()
    assert [r.status for r in requests] == ["succeeded"] * 5
    mpesa = world.sandbox.state("mpesa")
    assert len(mpesa["payments"]) == 5
    assert set(mpesa["paid_count_by_occasion"].values()) == {1}
    assert mpesa["duplicates_rejected"] >= 1  # the crashed attempt was resent and refused
    same = next(r for r in requests if r.id == crashed_request.id)
    assert same.originator_conversation_id == crashed_request.originator_conversation_id
    assert same.attempts == 1
    fineract = world.sandbox.state("fineract")["tenants"]["acme"]["disbursements"]
    assert sorted(d["loan_id"] for d in fineract) == sorted(r.fineract_loan_id for r in requests)
