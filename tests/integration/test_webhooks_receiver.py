"""The callback receiver stores each event once, refuses forgeries, and never loses an ack."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa
import stripe

from lending_dev.sandbox.server import BackgroundServer, free_port
from lending_dev.sandbox.twilio import twilio_signature
from lending_pipelines.db.common import inbound_events
from lending_pipelines.webhooks.app import ReceiverConfigError, build_app

TOKEN = "cb-token-7f3a9c-0123456789abcdef"
TWILIO_TOKEN = "receiver-test-twilio-auth-token-1"
WHSEC = "whsec_test_receiver"


def mpesa_result(conversation_id: str = "AG_20261124_0000abc", code=0) -> dict:
    return {
        "Result": {
            "ResultType": 0,
            "ResultCode": code,
            "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": "disb-1-1",
            "ConversationID": conversation_id,
            "TransactionID": "QKA1B2C3D4",
        }
    }


def signed(payload: str, secret: str = WHSEC) -> str:
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", secret)
    return f"t={timestamp},v1={signature}"


@pytest.fixture
def receiver(db, db_url):
    server = BackgroundServer(
        build_app(
            database_url=db_url,
            mpesa_token=TOKEN,
            stripe_webhook_secret=WHSEC,
            twilio_auth_token=TWILIO_TOKEN,
        ),
        health_path="/health",
    ).start()
    yield server
    server.stop()


def stored(db) -> list[tuple[str, str]]:
    with db.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(inbound_events.c.provider, inbound_events.c.event_id).order_by(
                    inbound_events.c.id
                )
            )
        ]


def test_the_same_mpesa_callback_delivered_three_times_is_stored_once(receiver, db):
    url = f"{receiver.base_url}/mpesa/{TOKEN}/result"
    answers = [httpx.post(url, json=mpesa_result()) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert stored(db) == [("mpesa", "result:AG_20261124_0000abc")]


def test_a_wrong_mpesa_path_token_is_not_found_and_not_stored(receiver, db):
    answer = httpx.post(f"{receiver.base_url}/mpesa/guess/result", json=mpesa_result())
    assert answer.status_code == 404
    assert stored(db) == []


def test_an_unparseable_mpesa_body_is_kept_not_dropped(receiver, db):
    answer = httpx.post(f"{receiver.base_url}/mpesa/{TOKEN}/timeout", content=b"<html>oops")
    assert answer.status_code == 200
    with db.connect() as conn:
        payload, event_type = conn.execute(
            sa.select(inbound_events.c.payload, inbound_events.c.event_type)
        ).one()
    assert payload == {"unparsed_body": "<html>oops"}
    assert event_type == "mpesa.timeout.unrecognised"


def test_a_stripe_event_with_a_bad_signature_is_refused_and_not_stored(receiver, db):
    payload = json.dumps({"id": "evt_1", "type": "transfer.created"})
    bad = httpx.post(
        f"{receiver.base_url}/stripe/events",
        content=payload,
        headers={"Stripe-Signature": signed(payload, "whsec_wrong")},
    )
    missing = httpx.post(f"{receiver.base_url}/stripe/events", content=payload)
    assert (bad.status_code, missing.status_code) == (400, 400)
    assert stored(db) == []
    good = httpx.post(
        f"{receiver.base_url}/stripe/events",
        content=payload,
        headers={"Stripe-Signature": signed(payload)},
    )
    assert good.status_code == 200
    assert stored(db) == [("stripe", "evt_1")]


def test_twilio_status_callbacks_are_stored_per_message_and_status(receiver, db):
    url = f"{receiver.base_url}/twilio/status"
    for status in ("sent", "delivered", "delivered"):
        form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": status}
        answer = httpx.post(
            url,
            data=form,
            headers={"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, form)},
        )
        assert answer.status_code == 204
    assert stored(db) == [
        ("twilio", "SM" + "a" * 32 + ":sent"),
        ("twilio", "SM" + "a" * 32 + ":delivered"),
    ]


def test_the_receiver_refuses_to_start_without_an_mpesa_token(db_url):
    with pytest.raises(ReceiverConfigError, match="LENDING_MPESA_CALLBACK_TOKEN"):
        build_app(database_url=db_url, mpesa_token="")


@pytest.mark.slow
def test_an_acknowledged_event_survives_the_receiver_being_killed(db, db_url):
    port = free_port()
    env = {
        **os.environ,
        "LENDING_DATABASE_URL": db_url,
        "LENDING_WEBHOOKS_URL": "https://hooks.example.test",
        "LENDING_WEBHOOKS_PORT": str(port),
        "LENDING_MPESA_CALLBACK_TOKEN": TOKEN,
    }

    def start() -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "lending_pipelines.cli", "webhooks"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                return process
            except httpx.TransportError:
                time.sleep(0.1)
        process.kill()
        raise AssertionError("receiver did not start")

    process = start()
    url = f"http://127.0.0.1:{port}/mpesa/{TOKEN}/result"
    try:
        assert httpx.post(url, json=mpesa_result("AG_kill_1")).status_code == 200
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert stored(db) == [("mpesa", "result:AG_kill_1")]
        process = start()
        assert httpx.post(url, json=mpesa_result("AG_kill_1")).status_code == 200
        assert stored(db) == [("mpesa", "result:AG_kill_1")]
    finally:
        process.kill()
        process.wait(timeout=10)
