"""Recorded Stripe error answers (API_CONTRACTS §3.4/3.5) replayed with respx: each maps to the
right kind, 429 is retried by us (the SDK would not), 5xx/connection by the SDK with the same
idempotency key, and replayed/stored errors are recognised."""

from __future__ import annotations

import httpx
import pytest
import respx

from lending_pipelines.partners.stripe import StripeConnectError, StripeErrorKind
from lending_pipelines.resources.stripe_connect import StripeConnectResource

BASE = "https://stripe.test"
KEY = "sk_test_recordedshapes00000001"

RATE_LIMIT = {
    "error": {
        "code": "rate_limit",
        "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
        "message": "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        "type": "invalid_request_error",
    }
}
IDEMPOTENCY = {
    "error": {
        "message": "Keys for idempotent requests can only be used with the same parameters they "
        "were first used with. Try using a key other than 'k1' if you meant to execute a "
        "different request.",
        "type": "idempotency_error",
    }
}
BALANCE = {
    "error": {
        "code": "balance_insufficient",
        "doc_url": "https://stripe.com/docs/error-codes/balance-insufficient",
        "message": "You have insufficient available funds in your Stripe account.",
        "type": "invalid_request_error",
    }
}
TRANSFER = {
    "id": "tr_1RecordedTransfer000001",
    "object": "transfer",
    "amount": 1000,
    "amount_reversed": 0,
    "created": 1767225600,
    "currency": "usd",
    "destination": "acct_1",
    "metadata": {},
    "reversed": False,
    "transfer_group": "g1",
}


def client(**overrides):
    values = {
        "api_key": KEY,
        "api_base": BASE,
        "max_network_retries": 2,
        "rate_limit_max_retries": 3,
        "rate_limit_backoff_seconds": 0.001,
        "rate_limit_backoff_cap_seconds": 0.01,
    }
    values.update(overrides)
    return StripeConnectResource(**values).get_client()


def pay(c):
    return c.create_transfer(
        amount=1000,
        currency="usd",
        destination="acct_1",
        idempotency_key="k1",
        transfer_group="g1",
    )


def answer(status: int, body: dict, **headers) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"request-id": "req_rec01", **headers})


@respx.mock
def test_429_is_retried_by_us_with_the_same_key_then_succeeds():
    route = respx.post(f"{BASE}/v1/transfers").mock(
        side_effect=[answer(429, RATE_LIMIT), answer(429, RATE_LIMIT), answer(200, TRANSFER)]
    )
    c = client()
    assert pay(c).id == TRANSFER["id"]
    assert route.call_count == 3 and c.rate_limited_retries == 2
    keys = {call.request.headers["idempotency-key"] for call in route.calls}
    assert keys == {"k1"}


@respx.mock
def test_429_that_never_clears_is_rate_limited_and_retryable():
    route = respx.post(f"{BASE}/v1/transfers").mock(return_value=answer(429, RATE_LIMIT))
    with pytest.raises(StripeConnectError) as info:
        pay(client(rate_limit_max_retries=2))
    assert route.call_count == 3  # the SDK itself never retries a 429
    assert info.value.kind is StripeErrorKind.RATE_LIMITED
    assert info.value.retryable and not info.value.outcome_unknown
    assert info.value.request_id == "req_rec01"


@respx.mock
def test_idempotency_error_is_final_and_not_retried():
    route = respx.post(f"{BASE}/v1/transfers").mock(return_value=answer(400, IDEMPOTENCY))
    with pytest.raises(StripeConnectError) as info:
        pay(client())
    assert route.call_count == 1
    assert info.value.kind is StripeErrorKind.IDEMPOTENCY and not info.value.retryable


@respx.mock
def test_balance_insufficient_is_final_and_not_retried():
    route = respx.post(f"{BASE}/v1/transfers").mock(return_value=answer(400, BALANCE))
    with pytest.raises(StripeConnectError) as info:
        pay(client())
    assert route.call_count == 1
    assert info.value.kind is StripeErrorKind.BALANCE_INSUFFICIENT
    assert "acct_1" in str(info.value)


@respx.mock
def test_5xx_is_retried_by_the_sdk_with_the_same_key():
    server_error = {"error": {"message": "An unknown error occurred", "type": "api_error"}}
    route = respx.post(f"{BASE}/v1/transfers").mock(
        side_effect=[answer(503, server_error), answer(200, TRANSFER)]
    )
    assert pay(client()).id == TRANSFER["id"]
    assert [c.request.headers["idempotency-key"] for c in route.calls] == ["k1", "k1"]


@respx.mock
def test_a_stored_500_replayed_by_stripe_is_not_retried_and_is_flagged():
    server_error = {"error": {"message": "An unknown error occurred", "type": "api_error"}}
    route = respx.post(f"{BASE}/v1/transfers").mock(
        return_value=answer(
            500, server_error, **{"stripe-should-retry": "false", "idempotent-replayed": "true"}
        )
    )
    with pytest.raises(StripeConnectError) as info:
        pay(client())
    assert route.call_count == 1
    assert info.value.kind is StripeErrorKind.SERVER and info.value.replayed
    assert info.value.outcome_unknown


@respx.mock
def test_connection_failures_are_retried_then_reported_as_outcome_unknown():
    route = respx.post(f"{BASE}/v1/transfers").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(StripeConnectError) as info:
        pay(client(max_network_retries=1))
    assert route.call_count == 2
    assert info.value.kind is StripeErrorKind.CONNECTION
    assert info.value.retryable and info.value.outcome_unknown


@respx.mock
def test_409_in_flight_conflict_is_retryable():
    conflict = {
        "error": {
            "code": "idempotency_key_in_use",
            "message": "There is currently another in-progress request using this Idempotent Key",
            "type": "invalid_request_error",
        }
    }
    respx.post(f"{BASE}/v1/transfers").mock(return_value=answer(409, conflict))
    with pytest.raises(StripeConnectError) as info:
        pay(client(max_network_retries=0))
    assert info.value.kind is StripeErrorKind.CONFLICT and info.value.retryable


@respx.mock
def test_an_echoed_api_key_is_redacted_from_the_error():
    body = {
        "error": {"message": f"Invalid API Key provided: {KEY}", "type": "invalid_request_error"}
    }
    respx.get(f"{BASE}/v1/balance").mock(return_value=answer(401, body))
    with pytest.raises(StripeConnectError) as info:
        client().available_balance()
    assert info.value.kind is StripeErrorKind.AUTHENTICATION
    assert KEY not in str(info.value) and KEY not in repr(info.value)
