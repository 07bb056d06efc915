"""Crash test: a run killed (SIGKILL) after a B2C request was accepted but before its outcome
was written. A re-run right away sends the loans the killed run never got to and leaves the
crashed attempt alone (it is `unknown`, not resent); the next day's retry tick (past the
reconcile window) settles it with a status query. M-Pesa's callbacks are lost throughout, so
nothing but status queries can settle anything. Nobody is paid twice, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from lending_pipelines.assets.loans.jobs import disbursement_retry_schedule
from lending_pipelines.db import loans as loans_db
from lending_pipelines.settings import PROJECT_ROOT, get_settings
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


def retry_tick(world, when: datetime) -> None:
    tick = disbursement_retry_schedule(
        dg.build_schedule_context(resources=world.resources(), scheduled_execution_time=when)
    )
    assert isinstance(tick, dg.RunRequest)
    assert world.run("disbursement_retry_job").success
    world.apply_results()


def test_a_run_killed_after_sending_a_b2c_then_rerun_and_next_day_pays_nobody_twice(
    world, monkeypatch
):
    monkeypatch.setenv("LENDING_DISBURSEMENT_RECONCILE_AFTER_MINUTES", "60")
    get_settings.cache_clear()
    world.sandbox.configure(
        "fineract",
        {
            "tenants": [
                {"id": "acme", "password": "acme-pass", "loans": 5, "invalid_phone_every": 0}
            ]
        },
    )
    world.sandbox.configure("mpesa", {"drop_callback_rate": 1.0})
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

    # the third payment went out; the database knows its attempt started, not how it ended
    assert len(world.sandbox.state("mpesa")["payments"]) == 3
    statuses = [(r.status, r.attempt_started_at is not None) for r in world.requests()]
    assert statuses == [
        ("submitted", True), ("submitted", True), ("unknown", True), ("pending", False),
        ("pending", False),
    ]  # fmt: skip
    crashed_request = world.requests()[2]

    # a re-run right away: the killed run's claims lapsed with its session; the crashed
    # attempt is neither resent nor asked about yet (inside the reconcile window)
    assert world.run("loan_polling_job").success
    retry_tick(world, datetime.now(UTC))
    mpesa = world.sandbox.state("mpesa")
    assert len(mpesa["payments"]) == 5 and mpesa["duplicates_rejected"] == 0
    assert mpesa["status_queries"] == []
    assert world.requests()[2].status == "unknown"

    # the next day: the retry tick past the reconcile window asks M-Pesa about every one
    with world.engine.begin() as conn:
        requests = loans_db.disbursement_requests
        conn.execute(
            sa.update(requests).values(
                submitted_at=requests.c.submitted_at - sa.text("interval '1 day'"),
                attempt_started_at=requests.c.attempt_started_at - sa.text("interval '1 day'"),
            )
        )
    retry_tick(world, datetime.now(UTC) + timedelta(days=1))
    assert world.run("loan_polling_job").success  # and the next day's polling run

    requests = world.requests()
    assert [r.status for r in requests] == ["succeeded"] * 5
    assert all(r.fineract_recorded_at for r in requests)
    mpesa = world.sandbox.state("mpesa")
    assert len(mpesa["payments"]) == 5 and mpesa["duplicates_rejected"] == 0
    assert set(mpesa["paid_count_by_occasion"].values()) == {1}
    same = next(r for r in requests if r.id == crashed_request.id)
    assert same.originator_conversation_id == crashed_request.originator_conversation_id
    assert same.attempts == 1 and same.status_queries == 1
    receipts = {p["originator_conversation_id"]: p["transaction_id"] for p in mpesa["payments"]}
    assert same.mpesa_transaction_id == receipts[same.originator_conversation_id]
    fineract = world.sandbox.state("fineract")["tenants"]["acme"]["disbursements"]
    assert sorted(d["loan_id"] for d in fineract) == sorted(r.fineract_loan_id for r in requests)
