"""send_once through the outbox table: one attempt per idempotency key, an ambiguous timeout
is recorded `unknown` and never resent, never-processed failures can be tried again."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lending_pipelines.db import outbox
from lending_pipelines.db.common import outbox as outbox_table
from lending_pipelines.resources.whatsapp import WhatsAppResource
from tests.whatsapp_sending import sandbox_whatsapp, send_once

TEMPLATE = "HX" + "ab" * 16
TO = "+254711000111"


@pytest.fixture
def whatsapp(sandbox) -> WhatsAppResource:
    return sandbox_whatsapp(sandbox, timeout_seconds=2)


def row(engine, key):
    with engine.connect() as conn:
        return outbox.get(conn, key)


def test_a_repeated_send_with_the_same_key_sends_once(db, sandbox, whatsapp):
    first = send_once(
        whatsapp, db, "reminder:42:2026-01-01", TO, content_sid=TEMPLATE, variables={"1": "Asha"}
    )
    second = send_once(
        whatsapp, db, "reminder:42:2026-01-01", TO, content_sid=TEMPLATE, variables={"1": "Asha"}
    )
    assert first.sent and first.attempted_now
    assert second.sent and not second.attempted_now
    assert second.provider_message_id == first.provider_message_id
    assert sandbox.state("twilio")["message_count"] == 1
    assert row(db, "reminder:42:2026-01-01").attempts == 1


def test_concurrent_sends_of_one_key_reach_twilio_once(db, sandbox, whatsapp):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(
                lambda _: send_once(whatsapp, db, "pause:7", TO, content_sid=TEMPLATE), range(8)
            )
        )
    assert sum(o.attempted_now for o in outcomes) == 1
    assert sandbox.state("twilio")["message_count"] == 1


def test_a_timeout_after_sending_is_unknown_and_not_resent(db, sandbox, whatsapp):
    # Twilio creates the message but answers after 400 ms; the client gave up after 100 ms.
    sandbox.configure("twilio", {"response_delay_ms": 400})
    impatient = whatsapp.model_copy(update={"timeout_seconds": 0.1})
    outcome = send_once(impatient, db, "order:9:followup", TO, content_sid=TEMPLATE)
    assert outcome.status == "unknown" and "outcome unknown" in outcome.error
    again = send_once(whatsapp, db, "order:9:followup", TO, content_sid=TEMPLATE)
    assert again.status == "unknown" and not again.attempted_now
    entry = row(db, "order:9:followup")
    assert entry.attempts == 1 and entry.provider_message_id is None
    assert sandbox.state("twilio")["message_count"] == 1  # one message, never two


def test_rate_limited_until_exhausted_goes_back_to_pending_and_sends_later(db, sandbox, whatsapp):
    sandbox.set_faults({"twilio": {"rate_limit_rate": 1}})
    outcome = send_once(whatsapp, db, "k-429", TO, content_sid=TEMPLATE)
    assert outcome.status == "pending" and "20429" in outcome.error
    assert sandbox.state("twilio")["message_count"] == 0
    sandbox.clear_faults()
    later = send_once(whatsapp, db, "k-429", TO, content_sid=TEMPLATE)
    assert later.sent and row(db, "k-429").attempts == 2
    assert sandbox.state("twilio")["message_count"] == 1


def test_the_same_key_with_another_message_is_refused(db, whatsapp):
    send_once(whatsapp, db, "k-conflict", TO, content_sid=TEMPLATE, variables={"1": "a"})
    with pytest.raises(outbox.OutboxConflictError, match="k-conflict"):
        send_once(whatsapp, db, "k-conflict", TO, content_sid=TEMPLATE, variables={"1": "b"})


def test_an_invalid_number_is_recorded_failed_not_raised(db, sandbox, whatsapp):
    outcome = send_once(whatsapp, db, "k-bad-phone", "0712 345", content_sid=TEMPLATE)
    assert outcome.status == "failed" and "0712 345" in outcome.error
    assert sandbox.state("twilio")["message_count"] == 0


def test_a_failed_delivery_callback_marks_the_row_failed(db, whatsapp):
    outcome = send_once(whatsapp, db, "k-63016", TO, body="free-form outside the window")
    with db.begin() as conn:
        changed = outbox.record_delivery_status(
            conn,
            provider_message_id=outcome.provider_message_id,
            status="failed",
            error_code=63016,
        )
    assert changed == 1
    entry = row(db, "k-63016")
    assert entry.status == "failed" and "63016" in entry.last_error


def test_a_row_stuck_in_sending_after_a_crash_becomes_unknown(db):
    with db.begin() as conn:
        outbox.enqueue(conn, idempotency_key="k-crash", channel="whatsapp", target=TO, payload={})
        outbox.claim(conn, "k-crash")
        conn.execute(
            sa.update(outbox_table)
            .where(outbox_table.c.idempotency_key == "k-crash")
            .values(sent_at=sa.func.now() - sa.text("interval '1 hour'"))
        )
    with db.begin() as conn:
        assert outbox.mark_stale_sending_unknown(conn, older_than=timedelta(minutes=10)) == 1
        assert outbox.claim(conn, "k-crash") is None  # not claimable: never resent blindly
    assert row(db, "k-crash").status == "unknown"


def test_resolving_an_unknown_row_is_audited(db):
    with db.begin() as conn:
        outbox.enqueue(conn, idempotency_key="k-res", channel="whatsapp", target=TO, payload={})
        outbox.claim(conn, "k-res")
        outbox.record_unknown(conn, "k-res", error="read timeout")
        outbox.resolve_unknown(
            conn,
            "k-res",
            status="sent",
            actor="ops@lender",
            reason="seen in Twilio console",
            provider_message_id="SM" + "1" * 32,
        )
        audit = conn.execute(sa.text("SELECT actor, action, reason FROM lending.audit_log")).one()
    assert tuple(audit) == ("ops@lender", "outbox.resolve_unknown", "seen in Twilio console")
    assert row(db, "k-res").status == "sent"
