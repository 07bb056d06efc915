"""B2C attempts: a started-but-unrecorded attempt is settled by status queries, never by a blind
resend; a resend needs two not-found answers some time apart and is recorded; every attempt
keeps its own id; submitters of every kind never send twice nor charge a wallet twice."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import sqlalchemy as sa

from lending_pipelines.assets.loans.assets import loan_disbursements, loan_tracking
from lending_pipelines.db import loans as loans_db
from lending_pipelines.db.common import audit_log
from lending_pipelines.db.disbursement_attempts import SUBMITTER_LOCK
from lending_pipelines.resources.mpesa import MpesaClient
from lending_pipelines.settings import get_settings
from lending_pipelines.workflows.loans.disbursement import Disburser
from lending_pipelines.workflows.loans.rules import DisbursementRules
from tests.loans_world import *  # noqa: F403


class DiedBeforeSending(Exception):
    """Stands for a process that died after committing the attempt, before the B2C call."""


def loans(world, count: int = 1, **partner: object) -> None:
    world.sandbox.configure(
        "fineract",
        {
            "tenants": [
                {"id": "acme", "password": "acme-pass", "loans": count, "invalid_phone_every": 0}
            ]
        },
    )
    world.add_partner("acme", **partner)


def start_attempt_without_sending(world, monkeypatch) -> sa.Row:
    def die(self, **kwargs):
        raise DiedBeforeSending("killed before the B2C call")

    with monkeypatch.context() as patched:
        patched.setattr(MpesaClient, "b2c_payment", die)
        assert not world.run("loan_polling_job", raise_on_error=False).success
    [request] = world.requests()
    return request


def attempts_of(world, request_id: int) -> list[sa.Row]:
    with world.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(loans_db.disbursement_attempts)
                .where(loans_db.disbursement_attempts.c.request_id == request_id)
                .order_by(loans_db.disbursement_attempts.c.attempt)
            )
        )


def wallet(world) -> int:
    with world.engine.connect() as conn:
        return conn.execute(sa.select(loans_db.partners.c.wallet_balance_minor)).scalar()


def reconcile_tick(world) -> None:
    assert world.run("disbursement_retry_job").success
    world.apply_results()


def test_an_attempt_whose_status_queries_fail_stays_unknown_and_is_never_resent(world, monkeypatch):
    loans(world)
    world.sandbox.configure("mpesa", {"status_query_result_code": 2001})  # initiator lacks role
    started = start_attempt_without_sending(world, monkeypatch)
    assert started.status == "unknown" and started.originator_conversation_id

    for _ in range(3):
        reconcile_tick(world)

    [after] = world.requests()
    assert after.status == "unknown" and after.status_queries == 3
    assert "2001" in after.last_status_query_error
    mpesa = world.sandbox.state("mpesa")
    assert mpesa["payments"] == [] and mpesa["duplicates_rejected"] == 0


def test_an_attempt_is_sent_again_with_its_id_only_after_two_not_found_answers_apart(
    world, monkeypatch
):
    monkeypatch.setenv("LENDING_DISBURSEMENT_NOT_FOUND_GAP_MINUTES", "30")
    get_settings.cache_clear()
    loans(world)
    started = start_attempt_without_sending(world, monkeypatch)

    reconcile_tick(world)  # not found, once
    reconcile_tick(world)  # not found again, but seconds later: could still be in flight
    assert world.sandbox.state("mpesa")["payments"] == []
    assert world.requests()[0].status == "unknown"
    [attempt] = attempts_of(world, started.id)
    assert attempt.not_found_count == 2 and attempt.resends == 0

    with world.engine.begin() as conn:  # half an hour later
        conn.execute(
            sa.update(loans_db.disbursement_attempts).values(
                first_not_found_at=loans_db.disbursement_attempts.c.first_not_found_at
                - sa.text("interval '31 minutes'")
            )
        )
    reconcile_tick(world)  # not found, 31 minutes after the first: send it again
    assert world.requests()[0].status == "pending"
    reconcile_tick(world)  # the resend
    world.apply_results()  # its result (a hint) -> query -> paid

    mpesa = world.sandbox.state("mpesa")
    [payment] = mpesa["payments"]
    assert payment["originator_conversation_id"] == started.originator_conversation_id
    [after] = world.requests()
    assert after.status == "succeeded" and after.attempts == 1
    [attempt] = attempts_of(world, started.id)
    assert attempt.resends == 1 and attempt.status == "succeeded"
    with world.engine.connect() as conn:
        actions = list(conn.execute(sa.select(audit_log.c.action)).scalars())
    assert actions.count("disbursement.resent") == 1
    assert actions.count("disbursement.resend_scheduled") == 1


def test_an_acknowledgement_with_missing_fields_leaves_the_request_unknown_with_its_charge(
    world,
):
    loans(world, disbursement_charge_minor=1000, wallet_balance_minor=5000)
    world.sandbox.configure(
        "mpesa", {"ack_omit_fields": ["ConversationID"], "drop_callback_rate": 1.0}
    )
    assert world.run("loan_polling_job").success

    [request] = world.requests()
    assert request.status == "unknown" and "ConversationID" in request.failure_reason
    assert request.charge_minor == 1000 and wallet(world) == 4000  # not refunded

    reconcile_tick(world)  # the status query finds the payment M-Pesa did make
    [after] = world.requests()
    assert after.status == "succeeded" and after.fineract_recorded_at is not None
    assert wallet(world) == 4000
    assert len(world.sandbox.state("mpesa")["payments"]) == 1


def test_every_attempt_keeps_its_own_originator_conversation_id(world):
    loans(world)
    world.sandbox.configure("mpesa", {"failure_rate": 1.0, "failure_codes": [17]})
    assert world.run("loan_polling_job").success
    world.apply_results()  # the failure callback: a hint -> status query
    world.apply_results()  # confirmed failed (17, retryable)
    time.sleep(1.3)  # the 1 s backoff
    assert world.run("disbursement_retry_job").success  # a new attempt, a new id
    world.apply_results()
    world.apply_results()

    [request] = world.requests()
    attempts = attempts_of(world, request.id)
    assert [a.attempt for a in attempts] == [1, 2]
    assert [a.originator_conversation_id[-3:] for a in attempts] == ["-A1", "-A2"]
    assert [a.status for a in attempts] == ["failed", "failed"]
    assert all(a.conversation_id for a in attempts)
    assert request.originator_conversation_id == attempts[-1].originator_conversation_id
    sent = {p["originator_conversation_id"] for p in world.sandbox.state("mpesa")["payments"]}
    assert sent == {a.originator_conversation_id for a in attempts}


def test_two_submission_steps_running_at_once_send_one_b2c_per_loan_and_charge_once(world):
    loans(world, count=6, disbursement_charge_minor=1000, wallet_balance_minor=100_000)
    assert dg.materialize(
        [loan_tracking], resources=world.resources(), instance=world.instance
    ).success
    with world.engine.begin() as conn:
        assert len(loans_db.create_disbursement_requests(conn)) == 6
    start = threading.Barrier(2)

    def submit():
        start.wait()
        with Disburser(
            world.engine,
            world.box,
            world.fineract,
            world.resources()["mpesa"],
            DisbursementRules.from_settings(get_settings()),
        ) as disburser:
            return disburser.submit_due()

    with ThreadPoolExecutor(2) as pool:
        outcomes = [f.result() for f in [pool.submit(submit), pool.submit(submit)]]

    assert sum(o["submitted"] for o in outcomes) == 6
    mpesa = world.sandbox.state("mpesa")
    assert len(mpesa["payments"]) == 6 and mpesa["duplicates_rejected"] == 0
    assert len({p["occasion"] for p in mpesa["payments"]}) == 6
    assert wallet(world) == 94_000
    assert sum(r.charge_minor for r in world.requests()) == 6000


def test_a_ui_materialization_sends_nothing_while_another_submitter_holds_the_lock(
    world, monkeypatch
):
    monkeypatch.setenv("LENDING_DISBURSEMENT_SUBMITTER_WAIT_SECONDS", "1")
    get_settings.cache_clear()
    loans(world, disbursement_charge_minor=1000, wallet_balance_minor=5000)
    with world.engine.connect() as other_submitter:
        other_submitter.execute(sa.text("SELECT pg_advisory_lock(:a, :b)"), dict(
            a=SUBMITTER_LOCK[0], b=SUBMITTER_LOCK[1]))  # fmt: skip
        other_submitter.commit()
        busy = dg.materialize(
            [loan_tracking, loan_disbursements],
            resources=world.resources(),
            instance=world.instance,
        )
        other_submitter.execute(sa.text("SELECT pg_advisory_unlock_all()"))
        other_submitter.commit()
    assert busy.success
    [materialization] = busy.asset_materializations_for_node("loan_disbursements")
    assert materialization.metadata["submission_submitter_busy"].value == 1
    assert world.sandbox.state("mpesa")["payments"] == []
    [waiting] = world.requests()
    assert waiting.status == "pending" and waiting.charge_minor == 0 and wallet(world) == 5000

    assert dg.materialize(
        [loan_disbursements], resources=world.resources(), instance=world.instance
    ).success
    assert len(world.sandbox.state("mpesa")["payments"]) == 1 and wallet(world) == 4000
