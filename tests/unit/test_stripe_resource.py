"""StripeConnectResource against the sandbox over real HTTP: every method, the error kinds,
idempotent transfers, recovery of a lost answer, and rate limiting without duplicates."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from lending_pipelines.partners.stripe import (
    InProcessRateLimiter,
    StripeConnectError,
    StripeErrorKind,
)
from lending_pipelines.resources.stripe_connect import StripeConnectResource

KEY = "sk_test_resourcecontract0000001"
READY = "acct_1DevCreatorReady01"


def make_resource(sandbox, **overrides) -> StripeConnectResource:
    values = {
        "api_key": KEY,
        "api_base": sandbox.url("stripe"),
        "max_network_retries": 2,
        "timeout_seconds": 5.0,
        "rate_limit_backoff_seconds": 0.02,
        "rate_limit_backoff_cap_seconds": 0.2,
    }
    values.update(overrides)
    return StripeConnectResource(**values)


@pytest.fixture
def stripe_client(sandbox):
    return make_resource(sandbox).get_client()


def pay(client, key: str, amount: int = 1_000, destination: str = READY, **extra):
    return client.create_transfer(
        amount=amount, currency="usd", destination=destination, idempotency_key=key, **extra
    )


def test_account_check_reports_payouts_capability_and_requirements(stripe_client):
    ready = stripe_client.check_account(READY)
    assert ready.can_receive_transfers and ready.ineligibility_reason() is None
    no_payouts = stripe_client.check_account("acct_1DevCreatorNoPay07")
    assert not no_payouts.payouts_enabled
    assert no_payouts.requirements_due == ("external_account",)
    assert "payouts disabled" in no_payouts.ineligibility_reason()
    restricted = stripe_client.check_account("acct_1DevCreatorRestr08")
    assert restricted.transfers_capability == "inactive"
    assert restricted.requirements_due == ("individual.verification.document",)


def test_account_check_of_an_unknown_account_names_it(stripe_client):
    with pytest.raises(StripeConnectError, match="acct_missing") as info:
        stripe_client.check_account("acct_missing")
    assert info.value.kind is StripeErrorKind.INVALID_REQUEST
    assert info.value.http_status == 404 and not info.value.retryable


def test_platform_balance_is_integer_minor_units_per_currency(stripe_client, sandbox):
    sandbox.configure("stripe", {"balance": {"usd": 123_456, "eur": 7}})
    assert stripe_client.available_balance() == {"usd": 123_456, "eur": 7}


def test_transfer_uses_the_callers_idempotency_key_and_replays(stripe_client, sandbox):
    first = pay(
        stripe_client,
        "batch-1:creator-1",
        transfer_group="batch-1:creator-1",
        metadata={"payout_item": "batch-1:creator-1"},
    )
    again = pay(
        stripe_client,
        "batch-1:creator-1",
        transfer_group="batch-1:creator-1",
        metadata={"payout_item": "batch-1:creator-1"},
    )
    assert again.id == first.id and again.replayed and not first.replayed
    state = sandbox.state("stripe")
    assert state["transfers_per_idempotency_key"] == {"batch-1:creator-1": 1}
    assert state["transfers"][0]["metadata"] == {"payout_item": "batch-1:creator-1"}


def test_idempotency_error_is_final_and_distinct(stripe_client):
    pay(stripe_client, "k-same")
    with pytest.raises(StripeConnectError) as info:
        pay(stripe_client, "k-same", amount=1_001)
    assert info.value.kind is StripeErrorKind.IDEMPOTENCY
    assert not info.value.retryable and not info.value.outcome_unknown


def test_balance_insufficient_is_final_and_distinct(stripe_client, sandbox):
    sandbox.configure("stripe", {"balance": {"usd": 10}})
    with pytest.raises(StripeConnectError) as info:
        pay(stripe_client, "k-poor")
    assert info.value.kind is StripeErrorKind.BALANCE_INSUFFICIENT
    assert info.value.code == "balance_insufficient" and not info.value.retryable


@pytest.mark.parametrize("destination", ["acct_1DevCreatorRestr08", "acct_unknown"])
def test_restricted_or_unknown_destination_is_invalid_account(stripe_client, destination):
    with pytest.raises(StripeConnectError, match=destination) as info:
        pay(stripe_client, f"k-{destination}", destination=destination)
    assert info.value.kind is StripeErrorKind.INVALID_ACCOUNT and not info.value.retryable


def test_find_transfers_by_group_confirms_whether_a_transfer_exists(stripe_client):
    assert stripe_client.find_transfers(transfer_group="b:c") == []
    created = pay(stripe_client, "b:c", transfer_group="b:c")
    pay(stripe_client, "other", transfer_group="other")
    found = stripe_client.find_transfers(transfer_group="b:c")
    assert [t.id for t in found] == [created.id]


def test_find_transfers_follows_pagination(stripe_client):
    ids = {
        pay(stripe_client, f"page-{n}", amount=100 + n, transfer_group="many").id
        for n in range(105)
    }
    assert {t.id for t in stripe_client.find_transfers(transfer_group="many")} == ids


def test_reversal_partial_then_rest_restores_the_balance(stripe_client):
    before = stripe_client.available_balance()["usd"]
    transfer = pay(stripe_client, "k-rev", amount=800)
    partial = stripe_client.reverse_transfer(transfer.id, amount=300)
    assert partial.amount == 300 and partial.id.startswith("trr_")
    assert stripe_client.reverse_transfer(transfer.id).amount == 500
    assert stripe_client.retrieve_transfer(transfer.id).reversed
    assert stripe_client.available_balance()["usd"] == before
    with pytest.raises(StripeConnectError) as info:
        stripe_client.reverse_transfer(transfer.id)
    assert info.value.kind is StripeErrorKind.INVALID_REQUEST


def test_a_stored_500_replays_for_the_same_key_and_is_flagged(sandbox):
    client = make_resource(sandbox, max_network_retries=0).get_client()
    sandbox.configure("stripe", {"transfer_failure_rate": 1})
    with pytest.raises(StripeConnectError) as first:
        pay(client, "k-500")
    sandbox.configure("stripe", {"transfer_failure_rate": 0})
    with pytest.raises(StripeConnectError) as replay:
        pay(client, "k-500")
    assert first.value.kind is replay.value.kind is StripeErrorKind.SERVER
    assert first.value.outcome_unknown and replay.value.replayed and not first.value.replayed
    assert sandbox.state("stripe")["transfer_count"] == 0


def test_a_lost_answer_is_recovered_by_the_sdk_retry_with_the_same_key(sandbox):
    """The transfer is made but its answer never arrives; the SDK times out and resends the
    same key, which Stripe answers from its idempotency store: one transfer, not two."""
    client = make_resource(sandbox, timeout_seconds=0.3, max_network_retries=2).get_client()
    sandbox.configure("stripe", {"lost_response_rate": 1})
    transfer = pay(client, "k-lost")
    assert transfer.replayed
    state = sandbox.state("stripe")
    assert state["transfer_count"] == 1 and state["requests"]["responses_lost"] == 1


def test_a_concurrent_request_with_the_same_key_is_a_conflict_without_a_duplicate(sandbox):
    sandbox.configure("stripe", {"processing_ms": 300})
    client = make_resource(sandbox, max_network_retries=0).get_client()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(pay, client, "k-twice")
        threading.Event().wait(0.1)
        second = pool.submit(pay, client, "k-twice")
        outcomes = []
        for future in (first, second):
            try:
                outcomes.append(future.result().id)
            except StripeConnectError as exc:
                outcomes.append(exc.kind)
    assert StripeErrorKind.CONFLICT in outcomes
    assert sandbox.state("stripe")["transfer_count"] == 1


def test_with_rate_limiting_every_transfer_completes_once(sandbox):
    """The fault test of issue 3: 429s (bucket limit plus injected ones) are retried by us with
    the same key; every transfer completes and the sandbox's ledger has no duplicate."""
    sandbox.configure("stripe", {"rate_limit_per_second": 40, "rate_limit_burst": 2})
    sandbox.set_faults({"stripe": {"rate_limit_rate": 0.3}})
    client = make_resource(sandbox, rate_limit_max_retries=30).get_client()
    keys = [f"rl-batch:creator-{n}" for n in range(30)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        transfers = list(pool.map(lambda k: pay(client, k, transfer_group=k), keys))
    state = sandbox.state("stripe")
    assert client.rate_limited_retries > 0
    assert state["requests"]["rate_limited"] > 0
    assert state["transfer_count"] == len(keys) == len({t.id for t in transfers})
    assert set(state["transfers_per_idempotency_key"].values()) == {1}
    assert state["duplicate_transfer_groups"] == []


def test_an_in_process_limiter_paces_requests():
    now = [0.0]
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    limiter = InProcessRateLimiter(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert slept == [0.25, 0.25, 0.25, 0.25]


def test_the_api_key_is_not_in_the_resources_repr(sandbox):
    resource = make_resource(sandbox)
    assert KEY not in repr(resource) and KEY not in str(resource)
