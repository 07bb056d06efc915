"""The receiver, run as `lending webhooks` (a real uvicorn process), under abuse: forged and
oversized callbacks on every path, 50 slow clients and a non-ASCII token, with a genuine
callback arriving in the middle. Everything bad is refused or timed out, the process's memory
stays bounded, and the genuine callback is stored exactly once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from lending_dev.sandbox.server import free_port
from lending_pipelines.db.common import inbound_events

from .receiver_harness import (
    MPESA_TOKEN,
    SID,
    TWILIO_TOKEN,
    WHSEC,
    post_twilio,
    stream,
    twilio_form,
)

TIMEOUT_SECONDS = 2
HUNDRED_MB = 100 * 1024 * 1024
SLOW_CLIENTS = 50


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def genuine(conversation: str) -> dict:
    return {"Result": {"ResultType": 0, "ResultCode": 0, "ConversationID": conversation}}


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


def slow_client(port: int, results: list, request: bytes) -> None:
    """Sends one byte every 5 s (as the reported attack did) until the server answers or
    closes; records how long the server let it stay."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(5)
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
                sock.recv(1024)  # an answer (408) or the close: the server ended it
                break
            except TimeoutError:
                continue  # five quiet seconds: send the next byte
            except (BrokenPipeError, ConnectionResetError):
                break
    results.append(time.monotonic() - started)


def huge_upload(url: str, results: dict, name: str, headers: dict | None = None) -> None:
    sent = [0]
    try:
        answer = httpx.post(
            url, content=stream(HUNDRED_MB, sent=sent), headers=headers or {}, timeout=30
        )
        outcome = answer.status_code
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        outcome = type(exc).__name__
    results[name] = (outcome, sent[0])


def test_receiver_under_abuse_refuses_the_bad_stays_bounded_and_stores_the_genuine_once(
    db, db_url, tmp_path
):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LENDING_DATABASE_URL": db_url,
        "LENDING_WEBHOOKS_URL": base,
        "LENDING_MPESA_CALLBACK_TOKEN": MPESA_TOKEN,
        "LENDING_STRIPE_WEBHOOK_SECRET": WHSEC,
        "LENDING_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "LENDING_WEBHOOKS_REQUEST_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    }
    log_path = tmp_path / "receiver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lending_pipelines.cli", "webhooks", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.1)
        # Warm every code path once, so the baseline includes what a normal day loads.
        assert httpx.post(f"{base}/mpesa/{MPESA_TOKEN}/result", json=genuine("AG_warm")).is_success
        assert post_twilio(base, twilio_form(status="sent")).status_code == 204
        httpx.post(f"{base}/stripe/events", content=b"{}", headers={"Stripe-Signature": "t=1,v1=a"})
        baseline = rss_bytes(process.pid)

        peak = [baseline]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], rss_bytes(process.pid))
                time.sleep(0.05)

        slow_results: list[float] = []
        uploads: dict[str, tuple] = {}
        threads = [threading.Thread(target=sample)]
        slow_request = f"POST /mpesa/{MPESA_TOKEN}/result HTTP/1.1\r\nHost: a\r\n".encode()
        threads += [
            threading.Thread(target=slow_client, args=(port, slow_results, slow_request))
            for _ in range(SLOW_CLIENTS)
        ]
        twilio_headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": "forged",
        }
        paths = {
            "mpesa result": (f"/mpesa/{MPESA_TOKEN}/result", None),
            "mpesa timeout": (f"/mpesa/{MPESA_TOKEN}/timeout", None),
            "mpesa wrong token": ("/mpesa/guess-guess-guess-guess-guess/result", None),
            "stripe unsigned": ("/stripe/events", None),
            "stripe signed-looking": ("/stripe/events", {"Stripe-Signature": "t=1,v1=ab"}),
            "twilio": ("/twilio/status", twilio_headers),
            "health": ("/health", None),
            "unknown": ("/nowhere", None),
        }
        threads += [
            threading.Thread(target=huge_upload, args=(base + path, uploads, name, headers))
            for name, (path, headers) in paths.items()
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the abuse is under way: now the genuine and the forged callbacks
        forged = post_twilio(base, twilio_form(status="undelivered"), token="forged-token")
        non_ascii = httpx.post(f"{base}/mpesa/tökén-tökén-tökén-tökén/result", json=genuine("x"))
        genuine_answers = [
            httpx.post(f"{base}/mpesa/{MPESA_TOKEN}/result", json=genuine("AG_mid"), timeout=10)
            for _ in range(2)  # Daraja redelivers: stored once
        ]
        genuine_twilio = post_twilio(base, twilio_form(status="delivered"))
        for thread in threads[1:]:
            thread.join(timeout=30)
        elapsed = time.monotonic() - started
        sampling.set()
        threads[0].join()
        growth = peak[0] - baseline
        print(
            f"\nreceiver RSS: baseline {baseline / 2**20:.1f} MiB, peak {peak[0] / 2**20:.1f} "
            f"MiB, growth {growth / 2**20:.1f} MiB under {len(paths)} x 100 MB uploads and "
            f"{SLOW_CLIENTS} slow clients ({elapsed:.1f} s); uploads: {uploads}"
        )
        assert (forged.status_code, non_ascii.status_code) == (403, 404)
        assert [a.status_code for a in genuine_answers] == [200, 200]
        assert genuine_twilio.status_code == 204
        assert len(uploads) == len(paths), uploads
        for name, (outcome, sent) in uploads.items():
            assert outcome not in (200, 204), (name, outcome)
            assert sent < 32 * 1024 * 1024, (name, outcome, sent)  # cut off, not read through
        assert len(slow_results) == SLOW_CLIENTS
        assert max(slow_results) < TIMEOUT_SECONDS + 4, sorted(slow_results)[-5:]
        assert growth < 40 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB"
        assert stored(db) == [
            ("mpesa", "result:AG_warm"),
            ("twilio", f"{SID}:sent"),
            ("mpesa", "result:AG_mid"),
            ("twilio", f"{SID}:delivered"),
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert MPESA_TOKEN not in log_path.read_text(errors="replace")
