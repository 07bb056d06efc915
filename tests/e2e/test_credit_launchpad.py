"""Launchpad operations on retailer credit through Dagster: typed config, each change audited
(action, entity, old and new value, actor, reason, run id) in the same transaction; bad input
fails naming the field and the value and changes nothing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_pipelines.assets.credit.partitions import TIMEZONE, today
from lending_pipelines.db.credit.manual import Operator, record_payment
from lending_pipelines.resources.credit_config import CreditConfig
from lending_pipelines.workflows.credit.guardrails import run_guardrails
from tests.credit_book import (
    add_debit,
    add_retailer,
    at,
    credit_definitions,
    day_before,
    statuses,
)
from tests.whatsapp_sending import sandbox_whatsapp

DAY = today()
ACTOR = {"actor": "ops@example.com", "reason": "called the retailer"}


@pytest.fixture
def book(db):
    with db.begin() as conn:
        add_retailer(conn, "r-a", number="+919800000041", limit=100_000)
        add_retailer(conn, "r-b", number="+919800000042", status="PAUSED")
        first = add_debit(
            conn, "r-a", 30_000, created=at(day_before(DAY, 20)), due=day_before(DAY, 6)
        )
        second = add_debit(
            conn, "r-a", 20_000, created=at(day_before(DAY, 5)), due=DAY + timedelta(days=9)
        )
        cleared = add_debit(
            conn,
            "r-a",
            5_000,
            created=at(day_before(DAY, 40)),
            due=day_before(DAY, 26),
            status="CLEARED",
            cleared=5_000,
            cleared_at=at(day_before(DAY, 27)),
        )
    return db, {"first": first, "second": second, "cleared": cleared}


@pytest.fixture
def defs(database, sandbox):
    return credit_definitions(database, sandbox)


def launch(defs, job: str, config: dict):
    definition = defs.resolve_job_def(job)
    (op,) = definition.graph.node_names()
    return definition.execute_in_process(
        run_config={"ops": {op: {"config": {**ACTOR, **config}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def failure_message(result) -> str:
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return event.event_specific_data.error.message


def transactions(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT id, type, amount, status, cleared_amount, applies_to "
                    "FROM lending.credit_transactions ORDER BY id"
                )
            )
        ]


def audit(engine) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(row)
            for row in conn.execute(
                sa.text("SELECT * FROM lending.audit_log ORDER BY id")
            ).mappings()
        ]


def test_pause_and_unpause_are_audited_with_old_and_new_values(book, defs):
    engine, _ = book
    paused = launch(defs, "pause_credit_job", {"retailer_id": "r-a"})
    unpaused = launch(defs, "unpause_credit_job", {"retailer_id": "r-b"})
    assert paused.success and unpaused.success
    assert statuses(engine) == {"r-a": "PAUSED", "r-b": "ACTIVE"}
    entries = audit(engine)
    assert [
        (e["action"], e["entity"], e["entity_id"], e["actor"], e["reason"], e["run_id"])
        for e in entries
    ] == [
        ("credit.pause", "retailer", "r-a", ACTOR["actor"], ACTOR["reason"], paused.run_id),
        ("credit.unpause", "retailer", "r-b", ACTOR["actor"], ACTOR["reason"], unpaused.run_id),
    ]
    assert entries[0]["old_value"]["credit_status"] == "ACTIVE"
    assert entries[0]["new_value"] == {
        "credit_status": "PAUSED",
        "credit_pause_reason": ACTOR["reason"],
    }


def test_partial_then_full_payment_clears_the_debit_and_an_overpayment_is_refused(book, defs):
    engine, ids = book
    first = ids["first"]
    assert launch(
        defs,
        "record_credit_payment_job",
        {
            "credit_transaction_id": first,
            "amount": 10_000,
            "currency": "INR",
            "dry_run": False,
        },
    ).success
    over = launch(
        defs,
        "record_credit_payment_job",
        {
            "credit_transaction_id": first,
            "amount": 20_001,
            "currency": "INR",
            "dry_run": False,
        },
    )
    assert not over.success
    assert "amount is 20001 (INR 200.01), more than the INR 200.00 still owed" in failure_message(
        over
    )
    assert launch(
        defs,
        "record_credit_payment_job",
        {
            "credit_transaction_id": first,
            "amount": 20_000,
            "currency": "INR",
            "dry_run": False,
        },
    ).success
    rows = transactions(engine)
    assert rows[0][1:5] == ("DEBIT", 30_000, "CLEARED", 30_000)
    assert [r[1:] for r in rows[3:]] == [
        ("CREDIT", 10_000, "CLEARED", 0, first),
        ("CREDIT", 20_000, "CLEARED", 0, first),
    ]
    entries = audit(engine)
    assert [e["action"] for e in entries] == ["credit.payment", "credit.payment"]
    assert entries[0]["old_value"] == {"status": "OPEN", "cleared_amount": 0, "outstanding": 50_000}
    assert entries[1]["new_value"]["outstanding"] == 20_000
    assert entries[1]["new_value"]["status"] == "CLEARED"


@pytest.mark.parametrize(
    ("job", "config", "message"),
    [
        ("pause_credit_job", {"retailer_id": "r-x"}, "retailer_id 'r-x' is not a retailer"),
        (
            "pause_credit_job",
            {"retailer_id": "r-b"},
            "credit_status is 'PAUSED', expected 'ACTIVE'",
        ),
        (
            "record_credit_payment_job",
            {"credit_transaction_id": 999, "amount": 1, "currency": "INR", "dry_run": False},
            "credit_transaction_id 999 is not",
        ),
        (
            "record_credit_payment_job",
            {"credit_transaction_id": "first", "amount": 0, "currency": "INR", "dry_run": False},
            "amount is 0",
        ),
        (
            "record_credit_payment_job",
            {"credit_transaction_id": "first", "amount": -500, "currency": "INR", "dry_run": False},
            "amount is -500",
        ),
        (
            "record_credit_payment_job",
            {"credit_transaction_id": "first", "amount": 100, "currency": "KES", "dry_run": False},
            "currency is 'KES'",
        ),
        (
            "record_credit_payment_job",
            {
                "credit_transaction_id": "cleared",
                "amount": 100,
                "currency": "INR",
                "dry_run": False,
            },
            "status is 'CLEARED'",
        ),
        (
            "credit_adjustment_job",
            {
                "retailer_id": "r-a",
                "direction": "CREDIT",
                "amount": 50_001,
                "currency": "INR",
                "dry_run": False,
            },
            "amount is 50001",
        ),
        (
            "credit_adjustment_job",
            {
                "retailer_id": "r-a",
                "direction": "REFUND",
                "amount": 1,
                "currency": "INR",
                "dry_run": False,
            },
            "direction is 'REFUND'",
        ),
        (
            "credit_adjustment_job",
            {
                "retailer_id": "r-a",
                "direction": "DEBIT",
                "amount": 1,
                "currency": "INR",
                "dry_run": False,
            },
            "due_date is missing",
        ),
        (
            "change_credit_guardrails_job",
            {"retailer_id": "r-a", "max_outstanding_days": -3},
            "max_outstanding_days is -3",
        ),
        ("pause_credit_job", {"retailer_id": "r-a", "actor": " "}, "actor is ' '"),
    ],
)
def test_bad_input_fails_naming_the_field_and_value_and_changes_nothing(
    book, defs, job, config, message
):
    engine, ids = book
    config = {
        k: ids.get(v, v) if isinstance(v, str) and k == "credit_transaction_id" else v
        for k, v in config.items()
    }
    before = (transactions(engine), statuses(engine))
    result = launch(defs, job, config)
    assert not result.success
    assert message in failure_message(result)
    assert (transactions(engine), statuses(engine)) == before
    assert audit(engine) == []


def test_a_dry_run_reports_the_change_and_records_nothing(book, defs):
    engine, ids = book
    result = launch(
        defs,
        "record_credit_payment_job",
        {
            "credit_transaction_id": ids["second"],
            "amount": 5_000,
            "currency": "INR",
        },
    )
    assert result.success
    (event,) = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in event.event_specific_data.metadata.items()}
    assert metadata["dry_run"] is True
    assert metadata["new"]["status"] == "PARTIAL"
    assert len(transactions(engine)) == 3 and audit(engine) == []


def test_adjustments_add_a_charge_or_settle_the_oldest_charges_first(book, defs):
    engine, ids = book
    due = (DAY + timedelta(days=14)).isoformat()
    assert launch(
        defs,
        "credit_adjustment_job",
        {
            "retailer_id": "r-a",
            "direction": "DEBIT",
            "amount": 1_500,
            "currency": "INR",
            "due_date": due,
            "dry_run": False,
        },
    ).success
    assert launch(
        defs,
        "credit_adjustment_job",
        {
            "retailer_id": "r-a",
            "direction": "CREDIT",
            "amount": 35_000,
            "currency": "INR",
            "dry_run": False,
        },
    ).success
    rows = {r[0]: r[1:5] for r in transactions(engine)}
    assert rows[ids["first"]] == ("DEBIT", 30_000, "CLEARED", 30_000)  # due first
    assert rows[ids["second"]] == ("DEBIT", 20_000, "PARTIAL", 5_000)
    adjustments = [r for r in rows.values() if r[0] == "ADJUSTMENT"]
    assert adjustments == [("ADJUSTMENT", 1_500, "OPEN", 0), ("ADJUSTMENT", -35_000, "CLEARED", 0)]
    entries = audit(engine)
    assert [e["action"] for e in entries] == ["credit.debit_adjustment", "credit.credit_adjustment"]
    assert entries[1]["old_value"] == {"outstanding": 51_500}
    assert entries[1]["new_value"]["outstanding"] == 16_500


def test_changing_guardrails_is_audited(book, defs):
    engine, _ = book
    assert launch(
        defs,
        "change_credit_guardrails_job",
        {
            "retailer_id": "r-a",
            "max_order_value": 75_000,
        },
    ).success
    (entry,) = audit(engine)
    assert entry["action"] == "credit.guardrails_change"
    assert entry["old_value"] == {"max_order_value": 50_000, "max_outstanding_days": 30}
    assert entry["new_value"] == {"max_order_value": 75_000, "max_outstanding_days": 30}


def test_a_payment_committed_while_guardrails_wait_leaves_outstanding_status_and_audit_consistent(
    book, sandbox
):
    """Two connections: the payment holds r-a's row (retailer lock first, like guardrails); the
    guardrails run waits for it, then sees the lower outstanding and does not pause r-a."""
    engine, ids = book
    with engine.begin() as conn:  # r-a owes 50,000 against a limit of 49,500
        conn.execute(
            sa.text(
                "UPDATE lending.credit_accounts SET credit_limit = 49_500 WHERE retailer_id = 'r-a'"
            )
        )
    resource = sandbox_whatsapp(sandbox)
    reports = []

    def guardrails():
        with resource.get_client() as client:
            reports.append(
                run_guardrails(
                    engine,
                    client,
                    business_date=DAY,
                    tz=TIMEZONE,
                    actor="test",
                    action="credit.guardrails_pause",
                    run_id=None,
                    content_sid=CreditConfig().template_credit_paused,
                )
            )

    payment = engine.connect()
    transaction = payment.begin()
    record_payment(
        payment,
        credit_transaction_id=ids["second"],
        amount=1_000,
        currency="INR",
        operator=Operator("ops@example.com", "paid at the counter", None),
    )
    thread = threading.Thread(target=guardrails)
    thread.start()
    deadline = time.monotonic() + 5
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar_one()
            watcher.rollback()
            if waiting:
                break
            time.sleep(0.02)
    assert waiting == 1
    transaction.commit()
    payment.close()
    thread.join()
    assert reports[0].paused == []
    assert statuses(engine)["r-a"] == "ACTIVE"
    assert [e["action"] for e in audit(engine)] == ["credit.payment"]
    with engine.connect() as conn:
        owed = conn.execute(
            sa.text(
                "SELECT sum(amount - cleared_amount) FROM lending.credit_transactions "
                "WHERE retailer_id = 'r-a' AND status IN ('OPEN', 'PARTIAL')"
            )
        ).scalar_one()
    assert owed == 49_000
    assert sandbox.state("twilio")["message_count"] == 0
