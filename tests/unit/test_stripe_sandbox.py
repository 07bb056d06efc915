"""The sandbox's Stripe speaks Stripe's wire format: form bodies with brackets, Bearer keys,
request ids, idempotency replay/conflict/in-flight, balance and capability checks, list filters,
reversals and a token-bucket rate limit. Raw HTTP, no SDK in between."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from lending_dev.sandbox.core import SandboxConfigError
from lending_dev.sandbox.stripe import StripeSandbox, parse_form

KEY = "sk_test_sandboxcontract000000"
READY = "acct_1DevCreatorReady01"


@pytest.fixture
def http(sandbox):
    with httpx.Client(
        base_url=sandbox.url("stripe"), timeout=5, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client


def transfer(http: httpx.Client, key: str | None, **params) -> httpx.Response:
    body = {"amount": "500", "currency": "usd", "destination": READY, **params}
    headers = {"Idempotency-Key": key} if key else {}
    return http.post("/v1/transfers", data=body, headers=headers)


def test_form_bracket_notation_becomes_nested_values():
    body = b"amount=1000&metadata[loan_id]=7&metadata[note]=a%20b&expand[0]=x&expand[1]=y"
    assert parse_form(body) == {
        "amount": "1000",
        "metadata": {"loan_id": "7", "note": "a b"},
        "expand": ["x", "y"],
    }


def test_requests_without_a_test_secret_key_are_refused_with_401(sandbox):
    url = sandbox.url("stripe") + "/v1/balance"
    assert httpx.get(url).status_code == 401
    refused = httpx.get(url, headers={"Authorization": "Bearer pk_test_publishable0000"})
    assert refused.status_code == 401
    assert "pk_test_publishable0000" not in refused.text  # keys are masked like Stripe does
    assert refused.json()["error"]["type"] == "invalid_request_error"


def test_every_answer_carries_a_request_id(http):
    assert http.get("/v1/balance").headers["request-id"].startswith("req_")
    assert http.get("/v1/accounts/acct_nope").headers["request-id"].startswith("req_")


def test_transfer_debits_the_available_balance_and_keeps_metadata(http):
    before = http.get("/v1/balance").json()["available"][0]["amount"]
    response = transfer(http, "k-1", **{"metadata[payout_item]": "b1:c1", "transfer_group": "g"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "transfer" and body["id"].startswith("tr_")
    assert body["metadata"] == {"payout_item": "b1:c1"}
    assert body["amount"] == 500 and body["transfer_group"] == "g"
    assert http.get("/v1/balance").json()["available"][0]["amount"] == before - 500


def test_same_key_and_params_replays_the_first_answer_without_a_second_transfer(http, sandbox):
    first = transfer(http, "k-replay")
    second = transfer(http, "k-replay")
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert sandbox.state("stripe")["transfer_count"] == 1


def test_a_key_pruned_like_stripe_does_after_24_hours_makes_a_second_transfer(http, sandbox):
    first = transfer(http, "k-pruned")
    sandbox.configure("stripe", {"forget_idempotency_keys": True})
    second = transfer(http, "k-pruned")
    assert second.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in second.headers
    assert sandbox.state("stripe")["transfers_per_idempotency_key"] == {"k-pruned": 2}


def test_same_key_with_other_params_is_an_idempotency_error(http, sandbox):
    transfer(http, "k-conflict")
    response = transfer(http, "k-conflict", amount="501")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "idempotency_error"
    assert sandbox.state("stripe")["transfer_count"] == 1


def test_a_stored_500_is_replayed_for_the_same_key(http, sandbox):
    sandbox.configure("stripe", {"transfer_failure_rate": 1})
    first = transfer(http, "k-500")
    sandbox.configure("stripe", {"transfer_failure_rate": 0})
    again = transfer(http, "k-500")
    assert first.status_code == again.status_code == 500
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["stripe-should-retry"] == "false"
    assert transfer(http, "k-500-new").status_code == 200  # a new key executes again
    assert sandbox.state("stripe")["transfer_count"] == 1


def test_validation_errors_are_not_stored_under_the_key(http):
    missing = http.post(
        "/v1/transfers",
        data={"currency": "usd", "destination": READY},
        headers={"Idempotency-Key": "k-val"},
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "message": "Missing required param: amount.",
        "type": "invalid_request_error",
        "code": "parameter_missing",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-missing",
        "param": "amount",
    }
    assert transfer(http, "k-val").status_code == 200


def test_a_key_still_in_flight_gets_409(sandbox):
    sandbox.configure("stripe", {"processing_ms": 300})
    with (
        httpx.Client(
            base_url=sandbox.url("stripe"),
            timeout=5,
            headers={"Authorization": f"Bearer {KEY}"},
        ) as http,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        first = pool.submit(transfer, http, "k-flight")
        time.sleep(0.1)
        second = pool.submit(transfer, http, "k-flight")
        statuses = sorted([first.result().status_code, second.result().status_code])
    assert statuses == [200, 409]
    assert sandbox.state("stripe")["transfer_count"] == 1


def test_unknown_and_restricted_destinations_are_refused_on_destination(http):
    unknown = transfer(http, "k-u", destination="acct_doesnotexist")
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "destination"
    restricted = transfer(http, "k-r", destination="acct_1DevCreatorRestr08")
    assert restricted.status_code == 400
    assert restricted.json()["error"]["code"] == "insufficient_capabilities_for_transfer"


def test_a_transfer_above_the_available_balance_is_balance_insufficient(http, sandbox):
    sandbox.configure("stripe", {"balance": {"usd": 400}})
    response = transfer(http, "k-b")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "balance_insufficient"
    assert sandbox.state("stripe")["balance"]["usd"] == 400


def test_transfers_list_filters_by_group_and_destination_newest_first(http):
    transfer(http, "k-a", transfer_group="batch:1")
    transfer(http, "k-b", transfer_group="batch:1", destination="acct_1DevCreatorReady02")
    transfer(http, "k-c", transfer_group="batch:2")
    group = http.get("/v1/transfers", params={"transfer_group": "batch:1"}).json()
    assert [t["transfer_group"] for t in group["data"]] == ["batch:1", "batch:1"]
    assert group["data"][0]["destination"] == "acct_1DevCreatorReady02"  # newest first
    both = http.get("/v1/transfers", params={"transfer_group": "batch:1", "destination": READY})
    assert len(both.json()["data"]) == 1
    page = http.get("/v1/transfers", params={"limit": 2}).json()
    assert page["has_more"] is True and len(page["data"]) == 2
    rest = http.get(
        "/v1/transfers", params={"limit": 2, "starting_after": page["data"][-1]["id"]}
    ).json()
    assert rest["has_more"] is False and len(rest["data"]) == 1


def test_reversals_return_money_and_refuse_over_reversal(http, sandbox):
    tr = transfer(http, "k-rev").json()
    balance = sandbox.state("stripe")["balance"]["usd"]
    partial = http.post(f"/v1/transfers/{tr['id']}/reversals", data={"amount": "200"})
    assert partial.status_code == 200 and partial.json()["object"] == "transfer_reversal"
    too_much = http.post(f"/v1/transfers/{tr['id']}/reversals", data={"amount": "301"})
    assert too_much.status_code == 400 and too_much.json()["error"]["param"] == "amount"
    rest = http.post(f"/v1/transfers/{tr['id']}/reversals")
    assert rest.json()["amount"] == 300
    fetched = http.get(f"/v1/transfers/{tr['id']}").json()
    assert fetched["reversed"] is True and fetched["amount_reversed"] == 500
    assert sandbox.state("stripe")["balance"]["usd"] == balance + 500
    assert http.post(f"/v1/transfers/{tr['id']}/reversals").status_code == 400


def test_the_request_rate_limit_answers_429_in_stripes_shape(http, sandbox):
    sandbox.configure("stripe", {"rate_limit_per_second": 5, "rate_limit_burst": 5})
    statuses = [http.get("/v1/balance").status_code for _ in range(12)]
    assert statuses[:5] == [200] * 5 and 429 in statuses
    limited = http.get("/v1/balance")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit"
    assert sandbox.state("stripe")["requests"]["rate_limited"] >= 1


def test_account_state_is_seedable_and_reset_restores_it(http, sandbox):
    sandbox.configure(
        "stripe",
        {"accounts": [{"id": "acct_new", "payouts_enabled": False, "currently_due": ["tos"]}]},
    )
    account = http.get("/v1/accounts/acct_new").json()
    assert account["payouts_enabled"] is False
    assert account["requirements"]["currently_due"] == ["tos"]
    assert account["capabilities"] == {"transfers": "active"}
    sandbox.reset()
    assert http.get("/v1/accounts/acct_new").status_code == 404


def test_snapshot_counts_transfers_per_key_destination_and_group(http, sandbox):
    transfer(http, "k1", transfer_group="g1")
    transfer(http, "k2", transfer_group="g1")  # a second transfer in the same group
    state = sandbox.state("stripe")
    assert state["transfers_per_idempotency_key"] == {"k1": 1, "k2": 1}
    assert state["transfers_per_destination"] == {READY: 2}
    assert state["duplicate_transfer_groups"] == ["g1"]


def test_bad_options_are_refused_with_the_field_named():
    with pytest.raises(SandboxConfigError, match="transfers"):
        StripeSandbox(accounts=[{"id": "acct_x", "transfers": "maybe"}])
    with pytest.raises(SandboxConfigError, match="unknown option"):
        StripeSandbox(rate=3)
