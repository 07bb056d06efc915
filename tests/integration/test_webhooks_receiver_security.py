"""The receiver authenticates every callback it can, refuses oversized and slow requests early,
keeps its path token out of logs, and binds its own address (not the public URL's)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa
import stripe

from lending_dev.sandbox.server import free_port
from lending_pipelines.db.common import inbound_events
from lending_pipelines.settings import get_settings
from lending_pipelines.webhooks.app import ReceiverConfigError, build_app

from .receiver_harness import (
    MPESA_TOKEN,
    SID,
    TWILIO_TOKEN,
    WHSEC,
    ReceiverThread,
    post_twilio,
    raw_exchange,
    stream,
    twilio_form,
    twilio_signature,
)

PREVIOUS_TOKEN = "cb-token-previous-abcdefghijklmnop"
PREVIOUS_WHSEC = "whsec_previous_receiver"
RESULT = {
    "Result": {"ResultCode": 0, "ConversationID": "AG_sec_1", "OriginatorConversationID": "d"}
}


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


def serve(db_url: str, **options):
    limits = {
        k: options.pop(k) for k in ("request_timeout_seconds", "max_connections") if k in options
    }
    if "request_timeout_seconds" in limits:
        options["body_timeout_seconds"] = limits["request_timeout_seconds"]
    app = build_app(
        database_url=db_url,
        mpesa_token=options.pop("mpesa_token", MPESA_TOKEN),
        stripe_webhook_secret=options.pop("stripe_webhook_secret", WHSEC),
        twilio_auth_token=options.pop("twilio_auth_token", TWILIO_TOKEN),
        **options,
    )
    return ReceiverThread(app, **limits).start()


@pytest.fixture
def receiver(db, db_url):
    server = serve(db_url, request_timeout_seconds=1, max_connections=64)
    yield server
    server.stop()


def stripe_header(payload: str, secret: str) -> str:
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", secret)
    return f"t={timestamp},v1={signature}"


# --- Twilio: signatures, MessageSid format, multipart -------------------------------------


def test_twilio_signature_matches_twilios_documented_example():
    from lending_pipelines.webhooks.signatures import twilio_signature_valid

    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    documented = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signature_valid("12345", url, list(params.items()), documented)
    assert not twilio_signature_valid("12346", url, list(params.items()), documented)
    assert not twilio_signature_valid("12345", url + "&x=1", list(params.items()), documented)
    assert not twilio_signature_valid("12345", url, list(params.items()), "é" + documented[1:])


def test_a_forged_twilio_undelivered_callback_is_refused_and_not_stored(receiver, db):
    form = twilio_form(status="undelivered")
    unsigned = httpx.post(f"{receiver.base_url}/twilio/status", data=form)
    forged = post_twilio(receiver.base_url, form, token="not-the-account-token")
    assert (unsigned.status_code, forged.status_code) == (403, 403)
    assert stored(db) == []
    genuine = post_twilio(receiver.base_url, twilio_form(status="sent"))
    assert genuine.status_code == 204
    assert stored(db) == [("twilio", f"{SID}:sent")]


def test_a_signed_twilio_callback_to_the_public_url_is_accepted_behind_a_proxy(db, db_url):
    server = serve(db_url, public_url="https://hooks.example.test")
    try:
        form = twilio_form(status="read")
        signature = twilio_signature(TWILIO_TOKEN, "https://hooks.example.test/twilio/status", form)
        answer = httpx.post(
            f"{server.base_url}/twilio/status", data=form, headers={"X-Twilio-Signature": signature}
        )
        assert answer.status_code == 204
        assert stored(db) == [("twilio", f"{SID}:read")]
    finally:
        server.stop()


def test_twilio_callbacks_with_junk_message_sids_are_refused_and_not_stored(receiver, db):
    answers = [
        post_twilio(receiver.base_url, twilio_form(sid=sid)).status_code
        for sid in ("junk-1", "SM123", "SM" + "g" * 32, "XX" + "a" * 32, "")
    ]
    assert answers == [400] * 5
    assert stored(db) == []


def test_a_multipart_twilio_callback_is_refused_cleanly_not_a_500(receiver, db):
    answer = httpx.post(
        f"{receiver.base_url}/twilio/status",
        files={"MessageSid": (None, SID), "MessageStatus": (None, "failed")},
        headers={"X-Twilio-Signature": "irrelevant"},
    )
    assert answer.status_code == 415
    assert stored(db) == []


def test_twilio_callbacks_are_refused_when_no_auth_token_is_configured(db, db_url):
    server = serve(db_url, twilio_auth_token="")
    try:
        answer = post_twilio(server.base_url, twilio_form())
        assert answer.status_code == 403
        assert stored(db) == []
    finally:
        server.stop()


# --- size and time limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/mpesa/{MPESA_TOKEN}/result",
        f"/mpesa/{MPESA_TOKEN}/timeout",
        "/stripe/events",
        "/twilio/status",
    ],
)
def test_a_declared_oversized_body_is_refused_with_413_before_it_is_sent(receiver, db, path):
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-"
        f"urlencoded\r\nStripe-Signature: t=1,v1=ab\r\nX-Twilio-Signature: ab\r\n"
        f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = raw_exchange(receiver.port, request)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert time.monotonic() - started < 1  # answered at once, connection closed, no body read
    assert stored(db) == []


def test_a_streamed_100_mb_mpesa_body_is_cut_off_at_the_cap_and_not_stored(receiver, db):
    sent = [0]
    try:
        answer = httpx.post(
            f"{receiver.base_url}/mpesa/{MPESA_TOKEN}/result",
            content=stream(100 * 1024 * 1024, sent=sent),
            timeout=10,
        )
        assert answer.status_code == 413
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the receiver closed the connection while the client was still sending
    assert sent[0] < 32 * 1024 * 1024, sent[0]
    assert stored(db) == []


def test_an_unsigned_stripe_body_is_refused_before_it_is_read(receiver, db):
    sent = [0]
    try:
        answer = httpx.post(
            f"{receiver.base_url}/stripe/events", content=stream(100 * 1024 * 1024, sent=sent)
        )
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        answer = None  # refused mid-upload: the connection was closed on us
    assert answer is None or answer.status_code == 400
    assert sent[0] < 32 * 1024 * 1024, sent[0]
    assert stored(db) == []


def test_a_client_sending_its_headers_slowly_is_disconnected(receiver):
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as sock:
        started = time.monotonic()
        closed_after = None
        for byte in b"POST /mpesa/x/result HTTP/1.1\r\nHost: a\r\n":
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.4)
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None and closed_after < 4, closed_after


def test_a_client_sending_its_body_slowly_is_timed_out_with_408(receiver, db):
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as sock:
        sock.sendall(
            (
                f"POST /mpesa/{MPESA_TOKEN}/result HTTP/1.1\r\nHost: a\r\n"
                "Content-Length: 1000\r\n\r\n"
            ).encode()
        )
        started = time.monotonic()
        answer = b""
        while time.monotonic() - started < 5:
            try:
                sock.sendall(b"{")
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.5)
            try:
                chunk = sock.recv(1024)
            except TimeoutError:
                continue
            answer += chunk
            if not chunk or b"\r\n\r\n" in answer:
                break
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < 4
    assert stored(db) == []


def test_connections_beyond_the_cap_are_refused_at_once(db, db_url):
    server = serve(db_url, request_timeout_seconds=5, max_connections=8)
    held = []
    try:
        for _ in range(8):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=2))
        time.sleep(0.2)
        extra = raw_exchange(server.port, b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n", timeout=2)
        assert extra.startswith(b"HTTP/1.1 503 "), extra
        for sock in held:
            sock.close()
        held.clear()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the slots free up once the idle clients leave
            if raw_exchange(
                server.port,
                b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                timeout=2,
            ).startswith(b"HTTP/1.1 200 "):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the receiver did not serve again after the clients left")
    finally:
        for sock in held:
            sock.close()
        server.stop()


# --- M-Pesa path token: bytes comparison, rotation, length; Stripe secret roll --------------


def test_a_non_ascii_mpesa_token_is_not_found_not_a_500(receiver, db):
    answers = [
        httpx.post(f"{receiver.base_url}/mpesa/{token}/result", json=RESULT).status_code
        for token in ("tökén", "%C3%A9" * 20, "%FF%FE", MPESA_TOKEN[:-1] + "é")
    ]
    assert answers == [404, 404, 404, 404]
    assert stored(db) == []


def test_either_of_two_mpesa_tokens_is_accepted_during_a_rotation(db, db_url):
    server = serve(db_url, previous_mpesa_token=PREVIOUS_TOKEN)
    try:
        for n, token in enumerate((MPESA_TOKEN, PREVIOUS_TOKEN)):
            body = {"Result": {"ResultCode": 0, "ConversationID": f"AG_rot_{n}"}}
            answer = httpx.post(f"{server.base_url}/mpesa/{token}/result", json=body)
            assert answer.status_code == 200
        guess = httpx.post(f"{server.base_url}/mpesa/{PREVIOUS_TOKEN}x/result", json=RESULT)
        assert guess.status_code == 404
        assert stored(db) == [("mpesa", "result:AG_rot_0"), ("mpesa", "result:AG_rot_1")]
    finally:
        server.stop()


@pytest.mark.parametrize(
    "kwargs", [{"mpesa_token": "short-token"}, {"previous_mpesa_token": "short-previous"}]
)
def test_a_short_mpesa_token_stops_the_receiver_from_starting(db_url, kwargs):
    options = {"mpesa_token": MPESA_TOKEN, **kwargs}
    with pytest.raises(ReceiverConfigError, match="at least 24 characters") as error:
        build_app(database_url=db_url, **options)
    assert "short" not in str(error.value)  # the error names the variable, never the value


def test_either_of_two_stripe_secrets_is_accepted_during_a_roll(db, db_url):
    server = serve(db_url, previous_stripe_webhook_secret=PREVIOUS_WHSEC)
    try:
        answers = []
        for n, secret in enumerate((WHSEC, PREVIOUS_WHSEC, "whsec_neither")):
            payload = json.dumps({"id": f"evt_roll_{n}", "type": "transfer.created"})
            answers.append(
                httpx.post(
                    f"{server.base_url}/stripe/events",
                    content=payload,
                    headers={"Stripe-Signature": stripe_header(payload, secret)},
                ).status_code
            )
        assert answers == [200, 200, 400]
        assert stored(db) == [("stripe", "evt_roll_0"), ("stripe", "evt_roll_1")]
    finally:
        server.stop()


# --- M-Pesa source allow-list ---------------------------------------------------------------


def test_mpesa_callbacks_from_outside_the_allowed_networks_are_refused(db, db_url):
    server = serve(db_url, mpesa_allowed_networks=("196.201.214.0/24",))
    try:
        refused = httpx.post(f"{server.base_url}/mpesa/{MPESA_TOKEN}/result", json=RESULT)
        spoofed = httpx.post(  # X-Forwarded-For from a peer that is not a trusted proxy
            f"{server.base_url}/mpesa/{MPESA_TOKEN}/result",
            json=RESULT,
            headers={"X-Forwarded-For": "196.201.214.200"},
        )
        assert (refused.status_code, spoofed.status_code) == (403, 403)
        assert stored(db) == []
        assert httpx.get(f"{server.base_url}/health").status_code == 200
    finally:
        server.stop()


def test_x_forwarded_for_is_honoured_only_from_a_trusted_proxy(db, db_url):
    server = serve(
        db_url, mpesa_allowed_networks=("196.201.214.0/24",), trusted_proxies=("127.0.0.1/32",)
    )
    try:
        url = f"{server.base_url}/mpesa/{MPESA_TOKEN}/result"
        through_proxy = httpx.post(
            url, json=RESULT, headers={"X-Forwarded-For": "203.0.113.9, 196.201.214.200"}
        )
        forged_left = httpx.post(  # the client wrote the left entry; the proxy appended its peer
            url, json=RESULT, headers={"X-Forwarded-For": "196.201.214.200, 203.0.113.9"}
        )
        no_header = httpx.post(url, json=RESULT)
        assert [a.status_code for a in (through_proxy, forged_left, no_header)] == [200, 403, 403]
        assert stored(db) == [("mpesa", "result:AG_sec_1")]
    finally:
        server.stop()


def test_an_empty_allow_list_accepts_mpesa_callbacks_from_anywhere(receiver, db):
    answer = httpx.post(f"{receiver.base_url}/mpesa/{MPESA_TOKEN}/result", json=RESULT)
    assert answer.status_code == 200
    assert stored(db) == [("mpesa", "result:AG_sec_1")]


# --- the `lending webhooks` command ---------------------------------------------------------


def _run_cli(db_url: str, args: list[str], env_extra: dict[str, str]) -> subprocess.Popen:
    env = {
        **os.environ,
        "LENDING_DATABASE_URL": db_url,
        "LENDING_MPESA_CALLBACK_TOKEN": MPESA_TOKEN,
        "LENDING_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        **env_extra,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lending_pipelines.cli", "webhooks", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_up(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read().decode()
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("receiver did not start")


def test_lending_webhooks_binds_its_own_host_and_port_not_the_public_urls(db, db_url):
    port = free_port()
    process = _run_cli(
        db_url, ["--port", str(port)], {"LENDING_WEBHOOKS_URL": "https://hooks.example.test"}
    )
    try:
        _wait_up(port, process)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"ok": True}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_mpesa_path_token_never_appears_in_the_receiver_logs(db, db_url):
    port = free_port()
    process = _run_cli(db_url, ["--port", str(port)], {"LENDING_WEBHOOKS_URL": "http://x.test"})
    try:
        _wait_up(port, process)
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{base}/mpesa/{MPESA_TOKEN}/result", json=RESULT).status_code == 200
        assert httpx.post(f"{base}/mpesa/{MPESA_TOKEN}/nope", json=RESULT).status_code == 404
        assert httpx.post(f"{base}/mpesa/{MPESA_TOKEN[:-2]}/result").status_code == 404
        assert httpx.post(f"{base}/mpesa/tökén/result", json=RESULT).status_code == 404
        raw_exchange(
            port,
            f"POST /mpesa/{MPESA_TOKEN}/result HTTP/1.1\r\nHost: a\r\n"
            f"Content-Length: 999999999\r\n\r\n".encode(),
        )
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode(errors="replace")
    assert "/mpesa/***/result" in output  # requests are still logged, with the token redacted
    for fragment in (MPESA_TOKEN, MPESA_TOKEN[:-2], MPESA_TOKEN[4:20]):
        assert fragment not in output
    assert stored(db) == [("mpesa", "result:AG_sec_1")]


# --- body caps from the settings -------------------------------------------------------------


def test_a_provider_body_cap_set_in_the_environment_refuses_larger_callbacks(
    db, db_url, monkeypatch
):
    monkeypatch.setenv("LENDING_WEBHOOKS_MAX_BODY_BYTES_MPESA", "512")
    get_settings.cache_clear()
    server = serve(db_url)
    try:
        url = f"{server.base_url}/mpesa/{MPESA_TOKEN}/result"
        padded = {"Result": {**RESULT["Result"], "ResultDesc": "x" * 600}}
        assert httpx.post(url, json=padded).status_code == 413
        assert stored(db) == []
        assert httpx.post(url, json=RESULT).status_code == 200  # a callback under the cap
        assert stored(db) == [("mpesa", "result:AG_sec_1")]
    finally:
        server.stop()
        monkeypatch.delenv("LENDING_WEBHOOKS_MAX_BODY_BYTES_MPESA")
        get_settings.cache_clear()
