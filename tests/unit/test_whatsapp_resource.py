"""WhatsAppResource against the sandbox's Twilio over real HTTP: templates and session text,
201 queued then signed status callbacks sent → delivered → read, 63016 outside the 24-hour
window, validation codes, fetch, and status-callback parsing."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lending_dev.sandbox.server import BackgroundServer
from lending_dev.sandbox.twilio import (
    DEV_ACCOUNT_SID,
    DEV_AUTH_TOKEN,
    twilio_signature,
)
from lending_pipelines.partners.twilio import (
    WhatsAppError,
    WhatsAppErrorKind,
    parse_status_callback,
    whatsapp_address,
)
from lending_pipelines.resources.whatsapp import WhatsAppResource

TEMPLATE = "HX" + "ab" * 16
RETAILER = "+254712345678"


class CallbackSink:
    """A tiny HTTP server standing in for the webhook receiver."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], str]] = []

        async def receive(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))
            self.received.append((form, request.headers.get("x-twilio-signature", "")))
            return Response(status_code=204)

        self.server = BackgroundServer(
            Starlette(
                routes=[
                    Route("/twilio/status", receive, methods=["POST"]),
                    Route("/_admin/health", lambda r: Response("ok")),
                ]
            )
        ).start()
        self.url = f"{self.server.base_url}/twilio/status"

    def statuses(self, sid: str) -> list[str]:
        return [form["MessageStatus"] for form, _ in self.received if form["MessageSid"] == sid]


@pytest.fixture(scope="module")
def sink():
    sink = CallbackSink()
    yield sink
    sink.server.stop()


@pytest.fixture
def whatsapp(sandbox, sink) -> WhatsAppResource:
    sandbox.configure("twilio", {"callback_delay_ms": 10})
    sink.received.clear()  # sids are deterministic, so they repeat after each sandbox reset
    return WhatsAppResource(
        account_sid=DEV_ACCOUNT_SID,
        auth_token=DEV_AUTH_TOKEN,
        from_number="+14155238886",
        base_url=sandbox.url("twilio"),
        status_callback_url=sink.url,
        timeout_seconds=3,
        backoff_seconds=0.01,
    )


def wait_for(predicate, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_template_send_is_201_queued_then_sent_delivered_read_by_callback(whatsapp, sink, sandbox):
    with whatsapp.get_client() as client:
        message = client.send_template(RETAILER, TEMPLATE, {"1": "Asha", "2": "₹1,200"})
        assert message.status == "queued" and message.sid.startswith("SM")
        assert message.to == "whatsapp:+254712345678"
        wait_for(lambda: sink.statuses(message.sid) == ["sent", "delivered", "read"])
        assert client.fetch_message(message.sid).status == "read"
    stored = sandbox.state("twilio")["messages"][0]
    assert stored["content_sid"] == TEMPLATE
    assert stored["content_variables"] == '{"1": "Asha", "2": "₹1,200"}'


def test_callbacks_are_signed_with_the_auth_token(whatsapp, sink):
    with whatsapp.get_client() as client:
        sid = client.send_template(RETAILER, TEMPLATE).sid
    wait_for(lambda: sink.statuses(sid))
    form, signature = next((f, s) for f, s in sink.received if f["MessageSid"] == sid)
    assert signature == twilio_signature(DEV_AUTH_TOKEN, sink.url, form)


def test_free_form_text_outside_the_24h_window_fails_later_with_63016(whatsapp, sink):
    with whatsapp.get_client() as client:
        message = client.send_text(RETAILER, "Your order is on its way")
        assert message.status == "queued"  # the create itself is accepted
        wait_for(lambda: sink.statuses(message.sid) == ["failed"])
        fetched = client.fetch_message(message.sid)
    assert fetched.status == "failed" and fetched.error_code == 63016
    form = next(f for f, _ in sink.received if f["MessageSid"] == message.sid)
    update = parse_status_callback(form)
    assert update.failed and update.final and update.error_code == 63016


def test_free_form_text_inside_the_window_is_delivered(whatsapp, sink, sandbox):
    sandbox.configure("twilio", {"last_inbound": {RETAILER: "now"}})
    with whatsapp.get_client() as client:
        sid = client.send_text(RETAILER, "Thanks for your payment").sid
    wait_for(lambda: sink.statuses(sid) == ["sent", "delivered", "read"])


def test_an_invalid_number_is_refused_before_any_call(whatsapp, sandbox):
    with whatsapp.get_client() as client, pytest.raises(WhatsAppError, match="0712345678") as info:
        client.send_template("0712345678", TEMPLATE)
    assert info.value.kind is WhatsAppErrorKind.INVALID_RECIPIENT
    assert sandbox.state("twilio")["message_count"] == 0


def test_twilio_validation_codes_surface_as_typed_errors(sandbox, whatsapp):
    unknown_sender = whatsapp.model_copy(update={"from_number": "+15550001111"})
    with unknown_sender.get_client() as client, pytest.raises(WhatsAppError) as info:
        client.send_template(RETAILER, TEMPLATE)
    assert info.value.code == 21606 and info.value.http_status == 400
    assert info.value.kind is WhatsAppErrorKind.INVALID_REQUEST and not info.value.retryable


def test_wrong_credentials_are_an_authentication_error(sandbox, whatsapp):
    wrong = whatsapp.model_copy(update={"auth_token": "not-the-token-000000"})
    with wrong.get_client() as client, pytest.raises(WhatsAppError) as info:
        client.send_template(RETAILER, TEMPLATE)
    assert info.value.kind is WhatsAppErrorKind.AUTHENTICATION and info.value.code == 20003
    assert "not-the-token-000000" not in str(info.value)


def test_429_from_twilio_is_retried_until_it_clears(sandbox, whatsapp):
    sandbox.set_faults({"twilio": {"rate_limit_rate": 0.5}})
    with whatsapp.get_client() as client:
        sids = [client.send_template(RETAILER, TEMPLATE).sid for _ in range(8)]
    assert len(set(sids)) == 8
    assert sandbox.state("twilio")["message_count"] == 8


def test_whatsapp_addresses_are_normalised_and_checked():
    assert whatsapp_address("+254712345678") == "whatsapp:+254712345678"
    assert whatsapp_address("whatsapp:+919876543210") == "whatsapp:+919876543210"
    for bad in ("254712345678", "+0712345678", "whatsapp:12", ""):
        with pytest.raises(WhatsAppError):
            whatsapp_address(bad)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"MessageStatus": "sent"}, "MessageSid"),
        ({"MessageSid": "SM" + "0" * 32}, "MessageStatus"),
        ({"MessageSid": "SM" + "0" * 32, "MessageStatus": "failed", "ErrorCode": "x1"}, "x1"),
    ],
)
def test_malformed_status_callbacks_name_the_field(form, message):
    with pytest.raises(ValueError, match=message):
        parse_status_callback(form)
