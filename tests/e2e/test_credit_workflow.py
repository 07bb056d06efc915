"""Workflow 2 (retailer credit) end to end through Dagster: the real assets, jobs and schedules,
the real database and the sandbox's Twilio over HTTP, on a small hand-made book (one retailer
per rule, tests/credit_book.py). Every WhatsApp message must be a template (ContentSid), never
free-form text: the sandbox fails free-form messages outside the 24-hour window with 63016."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_dev.seed.credit import seed_credit
from lending_pipelines.assets.credit.partitions import TIMEZONE, today
from lending_pipelines.assets.credit.sensors import failed_credit_orders_sensor
from lending_pipelines.db.common import audit_log, outbox
from lending_pipelines.db.flags import set_flag
from lending_pipelines.resources.credit_config import CreditConfig
from lending_pipelines.workflows.credit.guardrails import run_guardrails
from lending_pipelines.workflows.credit.orders import (
    reverse_failed_orders,
    send_follow_ups,
)
from lending_pipelines.workflows.credit.reminders import send_reminders
from tests.credit_book import (
    add_debit,
    add_order,
    add_pending,
    add_retailer,
    at,
    credit_definitions,
    day_before,
    statuses,
)
from tests.whatsapp_sending import sandbox_whatsapp

DAY = today()
CONFIG = CreditConfig()
NUMBERS = {
    "r-ok": "+919800000001",
    "r-old": "+919800000002",
    "r-over": "+919800000003",
    "r-paused": "+919800000004",
    "r-paid": "+919800000005",
}


@pytest.fixture
def defs(database, sandbox):
    return credit_definitions(database, sandbox)


@pytest.fixture
def book(db):
    """r-ok within limits; r-old's oldest debit 45 days old (max 30); r-over above its limit;
    r-paused already paused; r-paid's old debit fully paid."""
    with db.begin() as conn:
        for retailer_id, number in NUMBERS.items():
            status = "PAUSED" if retailer_id == "r-paused" else "ACTIVE"
            add_retailer(conn, retailer_id, number=number, status=status, limit=50_000)
        add_debit(conn, "r-ok", 20_000, created=at(day_before(DAY, 5)), due=DAY + timedelta(days=9))
        add_debit(conn, "r-old", 10_000, created=at(day_before(DAY, 45)), due=day_before(DAY, 31))
        add_debit(
            conn, "r-over", 40_000, created=at(day_before(DAY, 3)), due=DAY + timedelta(days=11)
        )
        add_debit(
            conn, "r-over", 20_000, created=at(day_before(DAY, 1)), due=DAY + timedelta(days=13)
        )
        add_debit(conn, "r-paused", 90_000, created=at(day_before(DAY, 2)), due=DAY)
        add_debit(
            conn,
            "r-paid",
            10_000,
            created=at(day_before(DAY, 60)),
            due=day_before(DAY, 46),
            status="CLEARED",
            cleared=10_000,
            cleared_at=at(day_before(DAY, 47)),
        )
    return db


def run_job(defs, name, *, partition_key=None, config=None, raise_on_error=True):
    job = defs.resolve_job_def(name)
    run_config = {"ops": {job.graph.node_names()[0]: {"config": config}}} if config else None
    return job.execute_in_process(
        partition_key=partition_key,
        run_config=run_config,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def materialization(result, asset: str) -> dict:
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def audits(engine, prefix: str) -> list[dict]:
    with engine.connect() as conn:
        query = (
            sa.select(audit_log)
            .where(audit_log.c.action.startswith(prefix))
            .order_by(audit_log.c.entity_id, audit_log.c.id)
        )
        return [dict(row) for row in conn.execute(query).mappings()]


def outbox_rows(engine, kind: str) -> dict[str, str]:
    with engine.connect() as conn:
        query = sa.select(outbox.c.idempotency_key, outbox.c.status).where(
            outbox.c.idempotency_key.startswith(f"{kind}:")
        )
        return dict(conn.execute(query).all())


def twilio_messages(sandbox) -> list[dict]:
    return sandbox.state("twilio")["messages"]


def wait_for_final_statuses(sandbox, count: int) -> list[dict]:
    """The sandbox moves messages sent → delivered → read (or failed 63016) in the background."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        messages = twilio_messages(sandbox)
        if len(messages) == count and all(m["status"] in {"read", "failed"} for m in messages):
            return messages
        time.sleep(0.05)
    return twilio_messages(sandbox)


# --- guardrails and auto-pause -------------------------------------------------------------------


def test_guardrails_pause_overdue_and_over_limit_retailers_with_reason_audit_and_one_template(
    book, defs, sandbox
):
    result = run_job(defs, "credit_guardrails_job", partition_key=DAY.isoformat())

    assert statuses(book) == {
        "r-ok": "ACTIVE",
        "r-old": "PAUSED",
        "r-over": "PAUSED",
        "r-paused": "PAUSED",
        "r-paid": "ACTIVE",
    }
    with book.connect() as conn:
        reasons = dict(
            conn.execute(
                sa.text(
                    "SELECT id, credit_pause_reason FROM lending.retailers WHERE id IN "
                    "('r-old', 'r-over')"
                )
            ).all()
        )
    assert reasons["r-old"] == "oldest unpaid debit is 45 days old, 15 over max_outstanding_days 30"
    assert reasons["r-over"] == (
        "outstanding INR 600.00 exceeds the credit limit INR 500.00 by INR 100.00"
    )
    entries = audits(book, "credit.")
    assert [
        (e["entity_id"], e["action"], e["old_value"], e["new_value"]["credit_status"])
        for e in entries
    ] == [
        ("r-old", "credit.guardrails_pause", {"credit_status": "ACTIVE"}, "PAUSED"),
        ("r-over", "credit.guardrails_pause", {"credit_status": "ACTIVE"}, "PAUSED"),
    ]
    assert all(e["run_id"] == result.run_id and e["reason"] for e in entries)
    assert outbox_rows(book, "credit_paused") == {
        f"credit_paused:r-old:{DAY}": "sent",
        f"credit_paused:r-over:{DAY}": "sent",
    }
    messages = wait_for_final_statuses(sandbox, 2)
    assert sorted(m["to"] for m in messages) == [
        f"whatsapp:{NUMBERS['r-old']}",
        f"whatsapp:{NUMBERS['r-over']}",
    ]
    assert {m["content_sid"] for m in messages} == {CONFIG.template_credit_paused}
    assert all(m["body"] == "" and m["status"] == "read" for m in messages)
    variables = {json.loads(m["content_variables"])["1"] for m in messages}
    assert variables == {"R-Old", "R-Over"}
    meta = materialization(result, "credit_guardrails")
    assert (meta["paused"], meta["messages_sent"], meta["active_retailers_evaluated"]) == (2, 2, 4)
    assert checks(result) == {
        "no_retailer_paused_twice_a_day": True,
        "aging_buckets_reconcile_with_outstanding": True,
    }


def test_auto_pause_and_reruns_of_both_jobs_never_pause_or_notify_a_retailer_twice(
    book, defs, sandbox
):
    for _ in range(2):
        run_job(defs, "credit_guardrails_job", partition_key=DAY.isoformat())
        result = run_job(defs, "credit_auto_pause_job", partition_key=DAY.isoformat())
    assert materialization(result, "credit_auto_pause")["paused"] == 0
    assert len(audits(book, "credit.")) == 2
    assert len(outbox_rows(book, "credit_paused")) == 2
    assert sorted(sandbox.state("twilio")["messages_per_recipient"].values()) == [1, 1]


def test_auto_pause_finds_a_retailer_the_morning_made_overdue(book, defs, sandbox):
    run_job(defs, "credit_guardrails_job", partition_key=DAY.isoformat())
    with book.begin() as conn:
        add_debit(conn, "r-ok", 40_000, created=at(DAY, 8), due=DAY + timedelta(days=14))
    result = run_job(defs, "credit_auto_pause_job", partition_key=DAY.isoformat())
    assert materialization(result, "credit_auto_pause")["paused"] == 1
    assert statuses(book)["r-ok"] == "PAUSED"
    assert [e["action"] for e in audits(book, "credit.") if e["entity_id"] == "r-ok"] == [
        "credit.auto_pause"
    ]
    assert len(outbox_rows(book, "credit_paused")) == 3


def test_two_concurrent_guardrail_runs_pause_and_notify_each_retailer_once(book, sandbox):
    resource = sandbox_whatsapp(sandbox)
    engines = [sa.create_engine(book.url) for _ in range(2)]
    barrier = threading.Barrier(2)
    reports: list = []

    def run(engine, action):
        barrier.wait()
        with resource.get_client() as client:
            reports.append(
                run_guardrails(
                    engine,
                    client,
                    business_date=DAY,
                    tz=TIMEZONE,
                    actor="test",
                    action=action,
                    run_id=None,
                    content_sid=CONFIG.template_credit_paused,
                )
            )

    threads = [
        threading.Thread(target=run, args=(engines[0], "credit.guardrails_pause")),
        threading.Thread(target=run, args=(engines[1], "credit.auto_pause")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert sorted(p["retailer_id"] for r in reports for p in r.paused) == ["r-old", "r-over"]
    assert sum(len(r.delivery.sent) for r in reports) == 2
    assert len(audits(book, "credit.")) == 2
    assert sorted(sandbox.state("twilio")["messages_per_recipient"].values()) == [1, 1]


def test_a_run_waiting_on_a_retailer_row_paused_meanwhile_neither_pauses_nor_notifies_it(
    book, sandbox
):
    """Deterministic interleaving: another transaction holds r-old's row and pauses it while
    the run waits for the lock; after the wait the run must see r-old is no longer ACTIVE."""
    resource = sandbox_whatsapp(sandbox)
    holder = book.connect()
    transaction = holder.begin()
    holder.execute(sa.text("SELECT 1 FROM lending.retailers WHERE id = 'r-old' FOR UPDATE"))
    outcome: list = []

    def run():
        with resource.get_client() as client:
            outcome.append(
                run_guardrails(
                    book,
                    client,
                    business_date=DAY,
                    tz=TIMEZONE,
                    actor="test",
                    action="credit.guardrails_pause",
                    run_id=None,
                    content_sid=CONFIG.template_credit_paused,
                )
            )

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    with book.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar_one()
            watcher.rollback()  # pg_stat_activity is a snapshot per transaction
            if waiting:
                break
            time.sleep(0.02)
    assert waiting == 1
    holder.execute(
        sa.text(
            "UPDATE lending.retailers SET credit_status = 'PAUSED', credit_paused_at = now(), "
            "credit_pause_reason = 'paused by an operator' WHERE id = 'r-old'"
        )
    )
    transaction.commit()
    holder.close()
    thread.join()
    assert [p["retailer_id"] for p in outcome[0].paused] == ["r-over"]
    assert [e["entity_id"] for e in audits(book, "credit.")] == ["r-over"]
    assert list(outbox_rows(book, "credit_paused")) == [f"credit_paused:r-over:{DAY}"]


# --- payment reminders ---------------------------------------------------------------------------


@pytest.fixture
def reminder_book(db):
    """Debits due in 2 days (reminded), in 10 days (not yet), 5 days overdue (reminded), due
    today but reminded already today (not again), cleared (never)."""
    with db.begin() as conn:
        add_retailer(conn, "r-a", number="+919800000011", name="Asha")
        add_retailer(conn, "r-b", number="+919800000012", name="Bilal")
        soon = add_debit(
            conn, "r-a", 12_000, created=at(day_before(DAY, 12)), due=DAY + timedelta(days=2)
        )
        later = add_debit(
            conn, "r-a", 5_000, created=at(day_before(DAY, 1)), due=DAY + timedelta(days=10)
        )
        overdue = add_debit(
            conn,
            "r-b",
            30_000,
            created=at(day_before(DAY, 20)),
            due=day_before(DAY, 5),
            status="PARTIAL",
            cleared=10_000,
        )
        done_today = add_debit(conn, "r-b", 7_000, created=at(day_before(DAY, 14)), due=DAY)
        cleared = add_debit(
            conn,
            "r-b",
            9_000,
            created=at(day_before(DAY, 30)),
            due=day_before(DAY, 2),
            status="CLEARED",
            cleared=9_000,
        )
        conn.execute(
            sa.text(
                "UPDATE lending.credit_transactions SET reminder_sent_at = now(), "
                "reminder_count = 1 WHERE id = :id"
            ),
            {"id": done_today},
        )
    return db, {
        "soon": soon,
        "later": later,
        "overdue": overdue,
        "done_today": done_today,
        "cleared": cleared,
    }


def reminder_state(engine) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                sa.text("SELECT id, reminder_count FROM lending.credit_transactions ORDER BY id")
            ).all()
        )


def test_reminders_go_once_a_day_to_debits_due_soon_or_overdue_as_templates(
    reminder_book, defs, sandbox
):
    engine, ids = reminder_book
    result = run_job(defs, "payment_reminders_job", partition_key=DAY.isoformat())
    assert reminder_state(engine) == {
        ids["soon"]: 1,
        ids["later"]: 0,
        ids["overdue"]: 1,
        ids["done_today"]: 1,
        ids["cleared"]: 0,
    }
    assert outbox_rows(engine, "payment_reminder") == {
        f"payment_reminder:{ids['soon']}:{DAY}": "sent",
        f"payment_reminder:{ids['overdue']}:{DAY}": "sent",
    }
    messages = wait_for_final_statuses(sandbox, 2)
    assert {m["content_sid"] for m in messages} == {CONFIG.template_payment_reminder}
    variables = [list(json.loads(m["content_variables"]).values()) for m in messages]
    assert sorted(variables) == sorted(
        [
            ["Asha", "INR 120.00", (DAY + timedelta(days=2)).isoformat(), str(ids["soon"])],
            ["Bilal", "INR 200.00", day_before(DAY, 5).isoformat(), str(ids["overdue"])],
        ]
    )
    assert all(m["status"] == "read" for m in messages)
    assert materialization(result, "payment_reminders")["reminders_queued"] == 2

    run_job(defs, "payment_reminders_job", partition_key=DAY.isoformat())
    assert reminder_state(engine)[ids["soon"]] == 1
    assert sandbox.state("twilio")["message_count"] == 2


def test_reminders_are_not_sent_while_reminders_enabled_is_off(reminder_book, defs, sandbox):
    engine, ids = reminder_book
    with engine.begin() as conn:
        set_flag(conn, "REMINDERS_ENABLED", False, "ops@example.com", "WhatsApp outage")
    result = run_job(defs, "payment_reminders_job", partition_key=DAY.isoformat())
    assert materialization(result, "payment_reminders")["skipped"] == (
        "REMINDERS_ENABLED is off (environment or lending.feature_flags)"
    )
    assert reminder_state(engine)[ids["soon"]] == 0
    assert sandbox.state("twilio")["message_count"] == 0


def test_two_concurrent_reminder_runs_remind_each_debit_once(reminder_book, sandbox):
    engine, ids = reminder_book
    resource = sandbox_whatsapp(sandbox)
    engines = [sa.create_engine(engine.url) for _ in range(2)]
    barrier = threading.Barrier(2)

    def run(run_engine):
        barrier.wait()
        with resource.get_client() as client:
            send_reminders(
                run_engine,
                client,
                business_date=DAY,
                tz=TIMEZONE,
                window_days=3,
                content_sid=CONFIG.template_payment_reminder,
            )

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run_engine in engines:
        run_engine.dispose()
    assert reminder_state(engine)[ids["soon"]] == 1
    assert reminder_state(engine)[ids["overdue"]] == 1
    assert sandbox.state("twilio")["message_count"] == 2


# --- order recovery ------------------------------------------------------------------------------


@pytest.fixture
def order_book(db):
    """Pending orders 30 h old (expires), 23 h old (not yet), completed 40 h ago (stays);
    an order that expired 3 days ago (too old for a follow-up); a failed CREDIT order with its
    debit, a failed COD order, a delivered CREDIT order."""
    now = datetime.now(UTC)
    with db.begin() as conn:
        add_retailer(conn, "r-a", number="+919800000021", name="Asha")
        add_retailer(conn, "r-b", number="+919800000022", name="Bilal")
        expiring = add_pending(conn, "r-a", 15_000, created=now - timedelta(hours=30))
        fresh = add_pending(conn, "r-a", 8_000, created=now - timedelta(hours=23))
        completed = add_pending(conn, "r-b", 4_000, created=now - timedelta(hours=40))
        stale = add_pending(conn, "r-b", 6_000, created=now - timedelta(days=4))
        conn.execute(
            sa.text(
                "UPDATE lending.pending_orders SET status = CASE id WHEN :c THEN 'COMPLETED' "
                "ELSE 'EXPIRED' END, completed_at = CASE id WHEN :c THEN now() END, "
                "expired_at = CASE id WHEN :s THEN now() - interval '3 days' END "
                "WHERE id IN (:c, :s)"
            ),
            {"c": completed, "s": stale},
        )
        failed = add_order(conn, "r-b", 25_000, created=at(day_before(DAY, 1)), status="FAILED")
        failed_debit = add_debit(
            conn,
            "r-b",
            25_000,
            created=at(day_before(DAY, 1)),
            due=DAY + timedelta(days=13),
            order_id=failed,
        )
        add_order(conn, "r-b", 9_000, created=at(day_before(DAY, 1)), status="FAILED", mode="COD")
        delivered = add_order(conn, "r-a", 11_000, created=at(day_before(DAY, 2)))
        delivered_debit = add_debit(
            conn,
            "r-a",
            11_000,
            created=at(day_before(DAY, 2)),
            due=DAY + timedelta(days=12),
            order_id=delivered,
        )
    return db, {
        "expiring": expiring,
        "fresh": fresh,
        "completed": completed,
        "stale": stale,
        "failed": failed,
        "failed_debit": failed_debit,
        "delivered_debit": delivered_debit,
    }


def pending_state(engine) -> dict[int, tuple[str, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, status, follow_up_sent_at IS NOT NULL FROM lending.pending_orders "
                "ORDER BY id"
            )
        ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_pending_orders_expire_24_hours_after_creation_and_only_once(order_book, defs):
    engine, ids = order_book
    result = run_job(defs, "pending_order_expiry_job")
    assert pending_state(engine) == {
        ids["expiring"]: ("EXPIRED", False),
        ids["fresh"]: ("PENDING", False),
        ids["completed"]: ("COMPLETED", False),
        ids["stale"]: ("EXPIRED", False),
    }
    assert materialization(result, "pending_orders")["expired"] == 1
    with engine.connect() as conn:
        first = conn.execute(
            sa.text("SELECT expired_at FROM lending.pending_orders WHERE id = :id"),
            {"id": ids["expiring"]},
        ).scalar_one()
    again = run_job(defs, "pending_order_expiry_job")
    assert materialization(again, "pending_orders")["expired"] == 0
    with engine.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT expired_at FROM lending.pending_orders WHERE id = :id"),
                {"id": ids["expiring"]},
            ).scalar_one()
            == first
        )


def test_recently_expired_orders_get_one_follow_up_template_each(order_book, defs, sandbox):
    engine, ids = order_book
    run_job(defs, "pending_order_expiry_job")
    for _ in range(2):
        result = run_job(defs, "order_follow_ups_job")
    assert materialization(result, "order_follow_ups")["follow_ups_queued"] == 0
    assert pending_state(engine)[ids["expiring"]] == ("EXPIRED", True)
    assert pending_state(engine)[ids["stale"]] == ("EXPIRED", False)  # expired 3 days ago
    assert outbox_rows(engine, "order_follow_up") == {f"order_follow_up:{ids['expiring']}": "sent"}
    (message,) = wait_for_final_statuses(sandbox, 1)
    assert message["content_sid"] == CONFIG.template_order_follow_up
    assert json.loads(message["content_variables"]) == {
        "1": "Asha",
        "2": "INR 150.00",
        "3": str(ids["expiring"]),
    }
    assert message["status"] == "read"


def test_a_failed_credit_order_reverses_its_debit_once_and_tells_the_retailer(
    order_book, defs, sandbox
):
    engine, ids = order_book
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(
        instance=instance,
        resources={
            "database": dg.ResourceDefinition.hardcoded_resource(defs.resources["database"])
        },
    )
    request = failed_credit_orders_sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"failed_order_reversal:{ids['failed_debit']}:1"

    for _ in range(2):
        result = run_job(defs, "failed_order_reversal_job")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, type, amount, status, reversal_of FROM lending.credit_transactions "
                "ORDER BY id"
            )
        ).all()
    assert [(r.type, r.amount, r.status, r.reversal_of) for r in rows] == [
        ("DEBIT", 25_000, "REVERSED", None),
        ("DEBIT", 11_000, "OPEN", None),
        ("CREDIT", 25_000, "CLEARED", ids["failed_debit"]),
    ]
    (entry,) = audits(engine, "credit.order_failed_reversal")
    assert (entry["entity"], entry["entity_id"], entry["old_value"]["status"]) == (
        "credit_transaction",
        str(ids["failed_debit"]),
        "OPEN",
    )
    assert entry["new_value"]["status"] == "REVERSED"
    assert outbox_rows(engine, "order_failed") == {f"order_failed:{ids['failed']}": "sent"}
    (message,) = wait_for_final_statuses(sandbox, 1)
    assert message["content_sid"] == CONFIG.template_order_failed
    assert json.loads(message["content_variables"]) == {
        "1": "Bilal",
        "2": str(ids["failed"]),
        "3": "INR 250.00",
    }
    assert isinstance(failed_credit_orders_sensor(context), dg.SkipReason)
    assert op_metadata(result, "reverse_failed_orders")["reversed"] == 0  # the second run


def op_metadata(result, node: str) -> dict:
    (event,) = [
        e
        for e in result.all_node_events
        if e.event_type_value == "STEP_OUTPUT" and e.node_name == node
    ]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def test_two_concurrent_follow_up_and_reversal_runs_act_once(order_book, sandbox):
    engine, ids = order_book
    resource = sandbox_whatsapp(sandbox)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE lending.pending_orders SET status = 'EXPIRED', expired_at = now() "
                "WHERE id = :id"
            ),
            {"id": ids["expiring"]},
        )
    engines = [sa.create_engine(engine.url) for _ in range(2)]
    barrier = threading.Barrier(2)

    def run(run_engine):
        barrier.wait()
        with resource.get_client() as client:
            send_follow_ups(
                run_engine,
                client,
                lookback_hours=48,
                content_sid=CONFIG.template_order_follow_up,
            )
            reverse_failed_orders(
                run_engine,
                client,
                actor="test",
                run_id=None,
                content_sid=CONFIG.template_order_failed,
            )

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run_engine in engines:
        run_engine.dispose()
    with engine.connect() as conn:
        reversals = conn.execute(
            sa.text(
                "SELECT count(*) FROM lending.credit_transactions WHERE reversal_of IS NOT NULL"
            )
        ).scalar_one()
    assert reversals == 1
    assert len(audits(engine, "credit.order_failed_reversal")) == 1
    assert sandbox.state("twilio")["message_count"] == 2


def test_templates_reach_retailers_where_free_form_text_fails_with_63016(book, defs, sandbox):
    """Nobody wrote to us in 24 hours: the sandbox, like Twilio, fails free-form text (63016)
    and delivers the approved templates the jobs send."""
    run_job(defs, "credit_guardrails_job", partition_key=DAY.isoformat())
    with sandbox_whatsapp(sandbox).get_client() as client:
        client.send_text(NUMBERS["r-old"], "Your credit is paused")
    messages = wait_for_final_statuses(sandbox, 3)
    outcome = {(m["to"], bool(m["content_sid"])): (m["status"], m["error_code"]) for m in messages}
    assert outcome == {
        (f"whatsapp:{NUMBERS['r-old']}", True): ("read", None),
        (f"whatsapp:{NUMBERS['r-over']}", True): ("read", None),
        (f"whatsapp:{NUMBERS['r-old']}", False): ("failed", 63016),
    }


# --- the whole day on the demo book --------------------------------------------------------------


DAY_JOBS = [
    ("retailer_insights_job", (DAY - timedelta(days=1)).isoformat()),
    ("credit_guardrails_job", DAY.isoformat()),
    ("payment_reminders_job", DAY.isoformat()),
    ("credit_auto_pause_job", DAY.isoformat()),
    ("pending_order_expiry_job", None),
    ("order_follow_ups_job", None),
    ("failed_order_reversal_job", None),
]


def test_every_job_of_the_day_run_twice_on_the_demo_book_sends_each_message_once(
    db, settings, defs, sandbox
):
    with db.begin() as conn:
        seed_credit(conn, settings)
    for _ in range(2):
        for job, partition in DAY_JOBS:
            assert run_job(defs, job, partition_key=partition).success, job
    with db.connect() as conn:
        keys = dict(
            conn.execute(
                sa.select(outbox.c.idempotency_key, outbox.c.status).where(
                    outbox.c.idempotency_key.regexp_match(
                        "^(credit_paused|payment_reminder|order_follow_up|order_failed):"
                    )
                )
            ).all()
        )
        reversed_twice = conn.execute(
            sa.text(
                "SELECT count(*) FROM lending.credit_transactions d WHERE d.type = 'DEBIT' "
                "AND (SELECT count(*) FROM lending.credit_transactions c "
                "WHERE c.reversal_of = d.id) > 1"
            )
        ).scalar_one()
        pauses = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT entity_id) FROM lending.audit_log "
                "WHERE action IN ('credit.guardrails_pause', 'credit.auto_pause')"
            )
        ).one()
    kinds = {key.split(":")[0] for key in keys}
    assert kinds == {"credit_paused", "payment_reminder", "order_follow_up", "order_failed"}
    assert set(keys.values()) == {"sent"}
    messages = twilio_messages(sandbox)
    assert len(messages) == len(keys)
    sent = [(m["to"], m["content_sid"], m["content_variables"]) for m in messages]
    assert len(set(sent)) == len(sent) and all(m["body"] == "" for m in messages)
    assert reversed_twice == 0
    assert pauses[0] == pauses[1] > 0


# --- automation ----------------------------------------------------------------------------------


def test_schedules_skip_while_cron_is_off_and_reminders_while_reminders_are_off(db, database):
    from lending_pipelines.assets.credit.jobs import CREDIT_SCHEDULES

    def evaluate(schedule):
        context = dg.build_schedule_context(
            scheduled_execution_time=datetime.now(UTC), resources={"database": database}
        )
        return schedule(context)

    ran = {s.name: evaluate(s) for s in CREDIT_SCHEDULES}
    assert all(isinstance(request, dg.RunRequest) for request in ran.values()), ran
    assert ran["payment_reminders_daily"].partition_key == DAY.isoformat()
    assert ran["retailer_insights_daily"].partition_key == (DAY - timedelta(days=1)).isoformat()
    assert ran["order_follow_ups_daily"].partition_key is None
    with db.begin() as conn:
        set_flag(conn, "REMINDERS_ENABLED", False, "ops@example.com", "outage")
    reminders = next(s for s in CREDIT_SCHEDULES if s.name == "payment_reminders_daily")
    assert "REMINDERS_ENABLED is off" in evaluate(reminders).skip_message
    with db.begin() as conn:
        set_flag(conn, "CRON_ENABLED", False, "ops@example.com", "maintenance")
    skipped = {s.name: evaluate(s) for s in CREDIT_SCHEDULES}
    assert all(
        isinstance(skip, dg.SkipReason) and "CRON_ENABLED is off" in skip.skip_message
        for skip in skipped.values()
    )
