"""Recorded Twilio answers replayed with respx: 429/20429 is retried (never processed), 63016
and invalid numbers are final, a read timeout or 5xx is ambiguous and never retried."""

from __future__ import annotations

import httpx
import pytest
import respx

from lending_pipelines.partners.twilio import WhatsAppError, WhatsAppErrorKind
from lending_pipelines.resources.whatsapp import WhatsAppResource

BASE = "https://twilio.test"
SID = "AC" + "12" * 16
TOKEN = "recorded-shapes-auth-token-0001"
URL = f"{BASE}/2010-04-01/Accounts/{SID}/Messages.json"
TEMPLATE = "HX" + "cd" * 16

CREATED = {
    "sid": "SM" + "ef" * 16,
    "account_sid": SID,
    "status": "queued",
    "to": "whatsapp:+254712345678",
    "from": "whatsapp:+14155238886",
    "error_code": None,
    "error_message": None,
    "num_segments": "1",
    "date_created": "Thu, 01 Jan 2026 10:00:00 +0000",
}


def twilio_error(code: int, message: str, status: int) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def client(**overrides):
    values = {
        "account_sid": SID,
        "auth_token": TOKEN,
        "from_number": "+14155238886",
        "base_url": BASE,
        "backoff_seconds": 0.001,
        "backoff_cap_seconds": 0.01,
        "rate_limit_max_retries": 3,
    }
    values.update(overrides)
    return WhatsAppResource(**values).get_client()


def send(c):
    return c.send_template("+254712345678", TEMPLATE, {"1": "Asha"})


@respx.mock
def test_20429_is_retried_with_backoff_and_then_sends():
    route = respx.post(URL).mock(
        side_effect=[
            twilio_error(20429, "Too Many Requests", 429),
            httpx.Response(201, json=CREATED),
        ]
    )
    with client() as c:
        assert send(c).sid == CREATED["sid"]
    assert route.call_count == 2
    sent = dict(httpx.QueryParams(route.calls[-1].request.content.decode()))
    assert sent["ContentVariables"] == '{"1": "Asha"}' and sent["To"] == "whatsapp:+254712345678"
    assert "Body" not in sent


@respx.mock
def test_429_that_never_clears_is_a_retryable_rate_limit():
    route = respx.post(URL).mock(return_value=twilio_error(20429, "Too Many Requests", 429))
    with client(rate_limit_max_retries=2) as c, pytest.raises(WhatsAppError) as info:
        send(c)
    assert route.call_count == 3
    assert info.value.kind is WhatsAppErrorKind.RATE_LIMITED and info.value.retryable


@respx.mock
def test_63016_is_final_outside_window_and_not_retried():
    route = respx.post(URL).mock(
        return_value=twilio_error(
            63016,
            "Failed to send freeform message because you are outside the allowed window.",
            400,
        )
    )
    with client() as c, pytest.raises(WhatsAppError) as info:
        c.send_text("+254712345678", "hello")
    assert route.call_count == 1
    assert info.value.kind is WhatsAppErrorKind.OUTSIDE_WINDOW and not info.value.retryable


@respx.mock
def test_invalid_to_21211_is_an_invalid_recipient():
    respx.post(URL).mock(
        return_value=twilio_error(21211, "The 'To' number +25471 is not a valid phone number.", 400)
    )
    with client() as c, pytest.raises(WhatsAppError) as info:
        send(c)
    assert info.value.kind is WhatsAppErrorKind.INVALID_RECIPIENT


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("read timed out"), httpx.RemoteProtocolError("server disconnected")],
)
def test_a_failure_after_sending_is_ambiguous_and_not_retried(failure):
    route = respx.post(URL).mock(side_effect=failure)
    with client() as c, pytest.raises(WhatsAppError) as info:
        send(c)
    assert route.call_count == 1
    assert info.value.outcome_unknown and not info.value.retryable


@respx.mock
def test_a_5xx_is_ambiguous_and_not_retried():
    route = respx.post(URL).mock(return_value=twilio_error(20500, "Internal Server Error", 500))
    with client() as c, pytest.raises(WhatsAppError) as info:
        send(c)
    assert route.call_count == 1 and info.value.outcome_unknown


@respx.mock
def test_a_refused_connection_was_never_sent_and_is_retried():
    route = respx.post(URL).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=CREATED)]
    )
    with client() as c:
        assert send(c).status == "queued"
    assert route.call_count == 2


@respx.mock
def test_the_auth_token_is_sent_as_basic_auth_and_never_shown():
    route = respx.post(URL).mock(return_value=twilio_error(20003, f"Authenticate {TOKEN}", 401))
    with client() as c, pytest.raises(WhatsAppError) as info:
        send(c)
    assert route.calls[0].request.headers["authorization"].startswith("Basic ")
    assert TOKEN not in str(info.value)
