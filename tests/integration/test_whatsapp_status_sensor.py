"""whatsapp_delivery_status_sensor: stored Twilio status callbacks reach the outbox rows once,
never backwards, failures with their error code; unreadable or unmatched ones are kept with an
error; nothing happens while CRON_ENABLED is off."""

from __future__ import annotations

import time
from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_dev.sandbox.server import BackgroundServer
from lending_dev.sandbox.twilio import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN
from lending_pipelines.db import outbox
from lending_pipelines.db.common import inbound_events
from lending_pipelines.db.flags import set_flag
from lending_pipelines.db.inbound import store_event
from lending_pipelines.kill_switch import PAUSED_MESSAGE
from lending_pipelines.sensors.whatsapp_status import (
    apply_status_callbacks,
    whatsapp_delivery_status_sensor,
)
from lending_pipelines.webhooks.app import build_app
from tests.whatsapp_sending import sandbox_whatsapp, send_once

TO = "whatsapp:+254711000111"
TEMPLATE = "HX" + "ab" * 16


def sid(n: int) -> str:
    return f"SM{n:032x}"


def sent_row(db, key: str, message_sid: str) -> None:
    """An outbox row Twilio accepted as `message_sid` (what send_once records)."""
    with db.begin() as conn:
        outbox.enqueue(conn, idempotency_key=key, channel="whatsapp", target=TO, payload={})
        outbox.claim(conn, key)
        outbox.record_sent(conn, key, provider_message_id=message_sid)


def callback(
    db, message_sid: str, status: str, error_code: int | None = None, age: timedelta | None = None
) -> None:
    """Store a status callback as the receiver does, optionally received `age` ago."""
    form = {
        "AccountSid": DEV_ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "From": "whatsapp:+14155238886",
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "To": TO,
    }
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    store_raw(db, f"{message_sid}:{status}", form, age)


def store_raw(db, event_id: str, payload, age: timedelta | None = None) -> None:
    with db.begin() as conn:
        assert store_event(conn, "twilio", event_id, payload, "twilio.message")
        if age is not None:
            conn.execute(
                sa.update(inbound_events)
                .where(inbound_events.c.event_id == event_id)
                .values(received_at=sa.func.now() - age)
            )


def tick(database) -> str:
    result = whatsapp_delivery_status_sensor(
        dg.build_sensor_context(resources={"database": database})
    )
    assert isinstance(result, dg.SkipReason)  # the sensor applies directly; it never runs a job
    return result.skip_message


def row(db, key: str) -> outbox.OutboxEntry:
    with db.connect() as conn:
        entry = outbox.get(conn, key)
    assert entry is not None
    return entry


def events(db) -> dict[str, tuple[bool, str | None]]:
    """event id → (processed, error)."""
    with db.connect() as conn:
        return {
            event_id: (processed_at is not None, error)
            for event_id, processed_at, error in conn.execute(
                sa.select(
                    inbound_events.c.event_id,
                    inbound_events.c.processed_at,
                    inbound_events.c.error,
                )
            )
        }


def test_a_delivered_callback_is_applied_once(db, database):
    sent_row(db, "k1", sid(1))
    callback(db, sid(1), "delivered")
    message = tick(database)
    assert "processed 1 Twilio status callback(s): 1 outbox row(s) updated (delivered 1)" in message
    first = row(db, "k1")
    assert (first.status, first.delivery_status) == ("sent", "delivered")
    assert first.delivery_status_at is not None
    assert events(db) == {f"{sid(1)}:delivered": (True, None)}

    assert tick(database) == "no unapplied Twilio status callbacks"
    assert row(db, "k1") == first


def test_late_and_out_of_order_callbacks_never_move_a_row_backwards(db, database):
    sent_row(db, "across-ticks", sid(1))
    sent_row(db, "one-batch", sid(2))
    callback(db, sid(1), "read")
    tick(database)
    # Across ticks: `delivered` and `sent` arrive after `read`.
    callback(db, sid(1), "delivered")
    callback(db, sid(1), "sent")
    # Within one batch: read, then the earlier steps.
    callback(db, sid(2), "read")
    callback(db, sid(2), "sent")
    callback(db, sid(2), "delivered")
    message = tick(database)
    assert "1 outbox row(s) updated (read 1)" in message
    assert "4 changed nothing (late, repeated or overtaken)" in message
    assert row(db, "across-ticks").delivery_status == "read"
    assert row(db, "one-batch").delivery_status == "read"
    assert all(processed and error is None for processed, error in events(db).values())


def test_a_63016_failure_is_recorded_as_the_rows_last_error_and_is_final(db, database):
    sent_row(db, "outside-window", sid(1))
    sent_row(db, "bad-recipient", sid(2))
    callback(db, sid(1), "failed", error_code=63016)
    callback(db, sid(2), "sent")
    callback(db, sid(2), "undelivered", error_code=63024)
    assert "(failed 1, undelivered 1)" in tick(database)
    callback(db, sid(1), "sent")  # late
    callback(db, sid(2), "delivered")  # contradicts the failure: the failure stands
    tick(database)
    failed = row(db, "outside-window")
    assert (failed.status, failed.delivery_status) == ("failed", "failed")
    assert failed.last_error == "failed: error code 63016"
    undelivered = row(db, "bad-recipient")
    assert (undelivered.status, undelivered.delivery_status) == ("failed", "undelivered")
    assert undelivered.last_error == "undelivered: error code 63024"


def test_unknown_sids_and_malformed_callbacks_are_kept_with_an_error(db, database):
    sent_row(db, "known", sid(1))
    callback(db, sid(1), "delivered")
    callback(db, sid(99), "delivered", age=timedelta(minutes=10))
    store_raw(db, "bogus:sent", {"MessageSid": "bogus", "MessageStatus": "sent"})
    store_raw(db, f"{sid(1)}:received", {"MessageSid": sid(1), "MessageStatus": "received"})
    store_raw(
        db, f"{sid(1)}:failed", {"MessageSid": sid(1), "MessageStatus": "failed", "ErrorCode": "x"}
    )
    message = tick(database)
    assert "processed 5 Twilio status callback(s): 1 outbox row(s) updated" in message
    assert "1 with an unknown message sid and 3 malformed kept with an error" in message
    stored = events(db)
    assert stored[f"{sid(1)}:delivered"] == (True, None)
    assert stored[f"{sid(99)}:delivered"] == (True, f"no outbox row has MessageSid {sid(99)}")
    assert stored["bogus:sent"] == (True, "twilio status callback: field 'MessageSid' is 'bogus'")
    assert stored[f"{sid(1)}:received"][0]
    assert (
        "MessageStatus 'received' is not an outbound message status"
        in stored[f"{sid(1)}:received"][1]
    )
    assert "field 'ErrorCode' is 'x'" in stored[f"{sid(1)}:failed"][1]
    assert row(db, "known").status == "sent"  # the malformed failure changed nothing


def test_a_callback_arriving_before_the_send_is_recorded_waits_for_it(db, database):
    callback(db, sid(7), "sent")  # Twilio was faster than send_once's second transaction
    message = tick(database)
    assert "1 for a message sid not recorded yet left for a later tick" in message
    assert events(db) == {f"{sid(7)}:sent": (False, None)}
    sent_row(db, "k7", sid(7))
    assert "(sent 1)" in tick(database)
    assert row(db, "k7").delivery_status == "sent"
    assert events(db) == {f"{sid(7)}:sent": (True, None)}


def test_while_cron_enabled_is_off_the_sensor_skips_and_keeps_the_callbacks(db, database):
    sent_row(db, "k1", sid(1))
    callback(db, sid(1), "delivered")
    with db.begin() as conn:
        set_flag(conn, "CRON_ENABLED", False, "ops@lender", reason="incident")
    assert tick(database) == PAUSED_MESSAGE
    assert row(db, "k1").delivery_status is None
    assert events(db) == {f"{sid(1)}:delivered": (False, None)}
    with db.begin() as conn:
        set_flag(conn, "CRON_ENABLED", True, "ops@lender")
    assert "(delivered 1)" in tick(database)
    assert row(db, "k1").delivery_status == "delivered"


def test_a_batch_of_callbacks_is_applied_with_one_outbox_update(db, database):
    for n in range(40):
        sent_row(db, f"k{n}", sid(n))
        callback(db, sid(n), "sent")
        callback(db, sid(n), "delivered")
    engine = database.get_engine()
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert "80 Twilio status callback(s): 40 outbox row(s) updated (delivered 40)" in tick(
            database
        )
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert sum(s.lstrip().startswith("UPDATE lending.outbox") for s in statements) == 1
    assert sum(s.lstrip().startswith("UPDATE lending.inbound_events") for s in statements) == 1


def test_a_tick_stops_after_its_batches_and_the_next_one_continues(db):
    for n in range(5):
        sent_row(db, f"k{n}", sid(n))
        callback(db, sid(n), "delivered")
    first = apply_status_callbacks(db, batch_size=2, max_batches=2)
    assert (first.processed, first.more) == (4, True)
    assert "the next tick continues" in first.summary()
    second = apply_status_callbacks(db, batch_size=2, max_batches=2)
    assert (second.processed, second.more) == (1, False)
    assert {row(db, f"k{n}").delivery_status for n in range(5)} == {"delivered"}


@pytest.fixture
def receiver(db, db_url):
    server = BackgroundServer(
        build_app(
            database_url=db_url,
            mpesa_token="cb-token-test-0123456789abcdef",
            stripe_webhook_secret="",
            twilio_auth_token=DEV_AUTH_TOKEN,  # the sandbox signs its callbacks with it
        ),
        health_path="/health",
    ).start()
    yield server
    server.stop()


def test_end_to_end_sandbox_callbacks_through_the_receiver_reach_the_outbox(
    db, database, sandbox, receiver
):
    sandbox.configure("twilio", {"callback_delay_ms": 10})
    whatsapp = sandbox_whatsapp(
        sandbox, status_callback_url=f"{receiver.base_url}/twilio/status", timeout_seconds=2
    )
    template = send_once(whatsapp, db, "e2e:template", "+254711000111", content_sid=TEMPLATE)
    free_form = send_once(whatsapp, db, "e2e:free-form", "+254722000222", body="outside window")
    assert template.sent and free_form.sent  # both accepted (201); the failure comes later
    deadline = time.monotonic() + 10
    while len(sandbox.state("twilio")["callbacks"]) < 4:  # sent, delivered, read + failed
        assert time.monotonic() < deadline, sandbox.state("twilio")["callbacks"]
        time.sleep(0.02)
    assert {c.get("response_status") for c in sandbox.state("twilio")["callbacks"]} == {204}

    assert "4 Twilio status callback(s): 2 outbox row(s) updated (failed 1, read 1)" in tick(
        database
    )
    delivered = row(db, "e2e:template")
    assert (delivered.status, delivered.delivery_status) == ("sent", "read")
    assert delivered.provider_message_id == template.provider_message_id
    failed = row(db, "e2e:free-form")
    assert (failed.status, failed.last_error) == ("failed", "failed: error code 63016")
