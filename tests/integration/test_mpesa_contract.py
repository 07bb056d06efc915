"""Every MpesaClient method against the Daraja sandbox over real HTTP, with the sandbox's result
callbacks received by a small collector server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lending_dev.sandbox.mpesa import DEFAULT_APPS, NOT_FOUND_CODE
from lending_dev.sandbox.server import BackgroundServer
from lending_pipelines.resources.mpesa import (
    TOKEN_CACHE,
    MpesaAuthError,
    MpesaClient,
    MpesaDuplicateRequestError,
    MpesaFinalError,
    MpesaResource,
    MpesaResult,
    MpesaRetryableError,
    TokenCache,
    parse_result_callback,
)

ACME = DEFAULT_APPS[0]


class Collector:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.server = BackgroundServer(
            Starlette(
                routes=[
                    Route("/result", self.receive, methods=["POST"]),
                    Route("/_admin/health", self.health),
                ]
            )
        ).start()

    async def receive(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.json())
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    def results(self, count: int, timeout: float = 5.0) -> list[MpesaResult]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return [parse_result_callback(body) for body in self.bodies]


@pytest.fixture(scope="module")
def collector_server() -> Iterator[Collector]:
    collector = Collector()
    yield collector
    collector.server.stop()


@pytest.fixture
def collector(collector_server: Collector) -> Collector:
    collector_server.bodies.clear()
    TOKEN_CACHE.clear()
    return collector_server


def acme(sandbox, collector, app=ACME, **settings):
    resource = MpesaResource(
        base_url=sandbox.url("mpesa"),
        result_url=f"{collector.server.base_url}/result",
        backoff_base_seconds=0.01,
        **settings,
    )
    return resource.client_for(
        consumer_key=app["consumer_key"],
        consumer_secret=app["consumer_secret"],
        shortcode=app["shortcode"],
        initiator_name=app["initiator_name"],
        security_credential=app["security_credential"],
    )


def pay(client, ocid: str, phone: str = "254712345678", amount: int = 1500):
    return client.b2c_payment(
        originator_conversation_id=ocid, phone=phone, amount=amount, occasion=f"loan-{ocid}"
    )


def test_b2c_is_acknowledged_then_the_result_arrives_on_the_result_url(sandbox, collector):
    sandbox.configure("mpesa", {"callback_delay_ms": 50})
    ack = pay(acme(sandbox, collector), "acme-1-1")
    assert ack.response_code == "0" and ack.originator_conversation_id == "acme-1-1"
    [result] = collector.results(1)
    assert result.succeeded and result.originator_conversation_id == "acme-1-1"
    assert result.conversation_id == ack.conversation_id
    payment = sandbox.state("mpesa")["payments"][0]
    assert result.receipt == payment["transaction_id"] and result.amount == 1500
    assert payment["phone"] == "254712345678" and payment["callback"] == "delivered"


def test_a_resent_originator_id_is_refused_as_a_duplicate_and_pays_once(sandbox, collector):
    client = acme(sandbox, collector)
    pay(client, "acme-2-1")
    with pytest.raises(MpesaDuplicateRequestError):
        pay(client, "acme-2-1")
    state = sandbox.state("mpesa")
    assert len(state["payments"]) == 1 and state["duplicates_rejected"] == 1
    assert state["paid_count_by_occasion"] == {"loan-acme-2-1": 1}


def test_a_failed_payment_calls_back_with_its_code_and_no_parameters(sandbox, collector):
    sandbox.configure("mpesa", {"phone_results": {"254700000040": 2040}, "callback_delay_ms": 10})
    pay(acme(sandbox, collector), "acme-3-1", phone="254700000040")
    [result] = collector.results(1)
    assert result.result_code == "2040" and not result.succeeded and result.parameters == {}
    assert sandbox.state("mpesa")["paid_count_by_phone"] == {}


def test_a_wrong_security_credential_is_accepted_then_fails_with_2001(sandbox, collector):
    wrong = dict(ACME, security_credential="stale-credential")
    pay(acme(sandbox, collector, app=wrong), "acme-4-1")
    [result] = collector.results(1)
    assert result.result_code == "2001"


def test_a_dropped_callback_still_paid_and_the_status_query_tells(sandbox, collector):
    sandbox.configure("mpesa", {"drop_callback_rate": 1.0, "callback_delay_ms": 10})
    client = acme(sandbox, collector)
    pay(client, "acme-5-1")
    time.sleep(0.1)
    assert collector.bodies == []  # the B2C result never came
    ack = client.transaction_status(originator_conversation_id="acme-5-1")
    [result] = collector.results(1)
    assert result.conversation_id == ack.conversation_id and result.is_status_query
    assert result.queried_originator_conversation_id == "acme-5-1"
    assert result.transaction_status == "Completed"
    assert result.receipt == sandbox.state("mpesa")["payments"][0]["transaction_id"]


def test_a_status_query_for_an_unknown_payment_reports_not_found(sandbox, collector):
    sandbox.configure("mpesa", {"callback_delay_ms": 10})
    acme(sandbox, collector).transaction_status(originator_conversation_id="never-sent")
    [result] = collector.results(1)
    assert result.result_code == NOT_FOUND_CODE and not result.succeeded
    assert result.queried_originator_conversation_id == "never-sent"


def test_never_call_back_mode_sends_nothing(sandbox, collector):
    sandbox.configure("mpesa", {"callbacks": "never", "callback_delay_ms": 10})
    pay(acme(sandbox, collector), "acme-6-1")
    time.sleep(0.1)
    assert collector.bodies == []
    assert sandbox.state("mpesa")["payments"][0]["callback"] == "never"


def test_a_token_revoked_by_a_newer_one_is_refreshed_transparently(sandbox, collector):
    sandbox.configure("mpesa", {"invalidate_previous_token": True})
    client = acme(sandbox, collector)
    pay(client, "acme-7-1")
    # another process (its own token cache) mints a token, which revokes the one we cached
    other = MpesaClient(acme(sandbox, collector).config, token_cache=TokenCache())
    other.access_token()
    pay(client, "acme-7-2")
    state = sandbox.state("mpesa")
    assert len(state["payments"]) == 2 and state["tokens_issued"] == 3


def test_bad_consumer_credentials_fail_oauth_with_an_auth_error(sandbox, collector):
    wrong = dict(ACME, consumer_secret="wrong")
    with pytest.raises(MpesaAuthError):
        acme(sandbox, collector, app=wrong).access_token()


def test_an_amount_below_the_minimum_is_a_final_validation_error(sandbox, collector):
    with pytest.raises(MpesaFinalError, match="400.002.02"):
        pay(acme(sandbox, collector), "acme-8-1", amount=5)
    assert sandbox.state("mpesa")["payments"] == []


def test_spike_arrest_from_the_sandbox_is_retried_until_it_clears(sandbox, collector):
    sandbox.set_faults({"mpesa": {"rate_limit_rate": 0.5}})
    client = acme(sandbox, collector, max_attempts=10)
    for n in range(5):
        pay(client, f"acme-9-{n}")
    assert len(sandbox.state("mpesa")["payments"]) == 5
    assert sandbox.admin.get("/_admin/faults").json()["counts"].get("mpesa:rate_limit", 0) > 0


def test_spike_arrest_that_persists_is_a_retryable_error(sandbox, collector):
    sandbox.set_faults({"mpesa": {"rate_limit_rate": 1.0}})
    with pytest.raises(MpesaRetryableError):
        acme(sandbox, collector, max_attempts=2).access_token()
