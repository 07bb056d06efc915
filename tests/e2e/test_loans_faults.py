"""Fault tests: a failing partner never stops the others, and with 20 % of M-Pesa callbacks
dropped (and some transient payment failures) reconciliation still settles every request —
with no loan paid twice."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from lending_pipelines.db import loans as loans_db
from lending_pipelines.resources.fineract import FineractResource
from tests.loans_world import *  # noqa: F403

TENANTS = [
    {"id": "acme", "password": "acme-pass", "loans": 10, "invalid_phone_every": 0},
    {"id": "kilimo", "password": "kilimo-pass", "loans": 5, "invalid_phone_every": 0},
]


@pytest.mark.parametrize(
    ("fault", "error_fragment"),
    [
        ({"error_rate": 1.0}, "HTTP 500"),
        ({"timeout_rate": 1.0}, "timed out"),
        ({"malformed_rate": 1.0}, "not valid JSON"),
    ],
    ids=["500", "timeout", "malformed-json"],
)
def test_a_failing_partner_is_recorded_while_the_others_are_tracked(world, fault, error_fragment):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.add_partner("acme")
    world.add_partner("kilimo")
    world.sandbox.set_faults({"fineract:kilimo": fault})
    world.fineract = FineractResource(
        timeout_seconds=0.3, max_attempts=2, backoff_base_seconds=0.01
    )

    result = world.run("loan_polling_job")

    assert result.success  # one partner's failure does not fail the run
    assert {r.partner_id for r in world.tracked()} == {"acme"} and len(world.tracked()) == 10
    with world.engine.connect() as conn:
        attempts = {row.partner_id: row for row in conn.execute(sa.select(loans_db.poll_attempts))}
    assert attempts["acme"].ok and attempts["acme"].loans_seen == 10
    assert attempts["kilimo"].ok is False and attempts["kilimo"].finished_at is not None
    assert "kilimo" in attempts["kilimo"].error and error_fragment in attempts["kilimo"].error
    [check] = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "all_partners_polled"
    ]
    assert not check.passed and "kilimo" in check.description


def test_a_partner_with_bad_credentials_fails_its_poll_with_a_401(world):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.add_partner("acme")
    world.add_partner("kilimo", password="wrong-password")
    world.run("loan_polling_job")
    with world.engine.connect() as conn:
        error = conn.execute(
            sa.select(loans_db.poll_attempts.c.error).where(
                loans_db.poll_attempts.c.partner_id == "kilimo"
            )
        ).scalar()
    assert "HTTP 401" in error and "wrong-password" not in error


@pytest.mark.slow(seconds=25)
def test_with_20_percent_of_callbacks_dropped_every_request_settles_and_nobody_is_paid_twice(
    world,
):
    tenants = [dict(TENANTS[0], loans=40), dict(TENANTS[1], loans=20)]
    world.sandbox.configure("fineract", {"tenants": tenants})
    world.sandbox.configure(
        "mpesa", {"drop_callback_rate": 0.2, "failure_rate": 0.15, "failure_codes": [17, 26]}
    )
    world.add_partner("acme")
    world.add_partner("kilimo")

    world.run("loan_polling_job")
    world.apply_results()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(r.status in ("succeeded", "failed") and not r.retryable for r in world.requests()):
            break
        time.sleep(1.1)  # the 1 s backoff before a known-failed payment is tried again
        assert world.run("disbursement_retry_job").success  # the retry schedule's tick
        world.apply_results()

    requests = world.requests()
    assert len(requests) == 60
    assert {r.status for r in requests} <= {"succeeded", "failed"}
    assert all(not r.retryable for r in requests if r.status == "failed")
    mpesa = world.sandbox.state("mpesa")
    dropped = [p for p in mpesa["payments"] if p["callback"] == "dropped"]
    assert dropped, "the sandbox dropped callbacks"
    # dropped results were found by a status query, not by a resend
    dropped_ids = {p["originator_conversation_id"] for p in dropped if p["result_code"] == 0}
    reconciled = [r for r in requests if r.originator_conversation_id in dropped_ids]
    assert reconciled and all(r.status == "succeeded" and r.status_queries >= 1 for r in reconciled)
    # every loan paid exactly once, and each success recorded in Fineract once
    assert set(mpesa["paid_count_by_occasion"].values()) == {1}
    succeeded = [r for r in requests if r.status == "succeeded"]
    assert len(mpesa["paid_count_by_occasion"]) == len(succeeded) == 60
    fineract = world.sandbox.state("fineract")["tenants"]
    disbursed = [(t, d["loan_id"]) for t, s in fineract.items() for d in s["disbursements"]]
    assert sorted(disbursed) == sorted((r.partner_id, r.fineract_loan_id) for r in succeeded)
    # transient failures were retried with a new attempt id
    assert any(r.attempts > 1 for r in succeeded)
