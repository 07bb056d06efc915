"""The sandbox's Daraja speaks Daraja's wire format — raw HTTP, no client in between."""

from __future__ import annotations

import httpx
import pytest

from lending_dev.sandbox.mpesa import DEFAULT_APPS

APP = DEFAULT_APPS[0]


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.url("mpesa"), timeout=5) as client:
        yield client


@pytest.fixture
def bearer(http):
    response = http.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(APP["consumer_key"], APP["consumer_secret"]),
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def b2c_body(**overrides):
    body = {
        "OriginatorConversationID": "raw-1",
        "InitiatorName": APP["initiator_name"],
        "SecurityCredential": APP["security_credential"],
        "CommandID": "BusinessPayment",
        "Amount": 100,
        "PartyA": APP["shortcode"],
        "PartyB": "254712345678",
        "Remarks": "test",
        "QueueTimeOutURL": "http://127.0.0.1:9/timeout",
        "ResultURL": "http://127.0.0.1:9/result",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_oauth_answers_expires_in_as_a_string(http):
    response = http.get(
        "/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=(APP["consumer_key"], APP["consumer_secret"]),
    )
    assert response.status_code == 200 and response.json()["expires_in"] == "3599"


def test_oauth_with_a_wrong_grant_type_is_400_008_02(http):
    response = http.get("/oauth/v1/generate", params={"grant_type": "password"})
    assert response.status_code == 400 and response.json()["errorCode"] == "400.008.02"


def test_an_unknown_bearer_token_is_404_001_03(http):
    response = http.post(
        "/mpesa/b2c/v3/paymentrequest", json=b2c_body(), headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 404 and response.json()["errorCode"] == "404.001.03"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"OriginatorConversationID": None}, "OriginatorConversationID"),
        ({"PartyB": "0712345678"}, "PartyB"),
        ({"Amount": 9}, "Amount"),
        ({"Amount": 250001}, "Amount"),
        ({"CommandID": "Payout"}, "CommandID"),
        ({"Remarks": "x"}, "Remarks"),
    ],
)
def test_b2c_validation_errors_name_the_field(http, bearer, overrides, field):
    response = http.post("/mpesa/b2c/v3/paymentrequest", json=b2c_body(**overrides), headers=bearer)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "400.002.02"
    assert response.json()["errorMessage"] == f"Bad Request - Invalid {field}"


def test_the_ack_has_a_string_response_code_and_a_duplicate_is_http_500(http, bearer):
    first = http.post("/mpesa/b2c/v3/paymentrequest", json=b2c_body(), headers=bearer)
    again = http.post("/mpesa/b2c/v3/paymentrequest", json=b2c_body(), headers=bearer)
    assert first.status_code == 200 and first.json()["ResponseCode"] == "0"
    assert first.json()["ConversationID"].startswith("AG_")
    assert again.status_code == 500 and again.json()["errorCode"] == "500.002.1001"


def test_the_legacy_v1_path_needs_no_originator_id(http, bearer):
    response = http.post(
        "/mpesa/b2c/v1/paymentrequest",
        json=b2c_body(OriginatorConversationID=None),
        headers=bearer,
    )
    assert response.status_code == 200


def test_payment_outcomes_are_the_same_for_the_same_originator_ids_in_any_order(sandbox, http):
    def outcomes(order):
        sandbox.reset()
        sandbox.configure("mpesa", {"failure_rate": 0.5, "failure_codes": [1, 17, 26]})
        token = http.get(
            "/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=(APP["consumer_key"], APP["consumer_secret"]),
        ).json()["access_token"]
        for ocid in order:
            http.post(
                "/mpesa/b2c/v3/paymentrequest",
                json=b2c_body(OriginatorConversationID=ocid),
                headers={"Authorization": f"Bearer {token}"},
            ).raise_for_status()
        payments = sandbox.state("mpesa")["payments"]
        return {p["originator_conversation_id"]: p["result_code"] for p in payments}

    ids = [f"o-{n}" for n in range(12)]
    forward, backward = outcomes(ids), outcomes(list(reversed(ids)))
    assert forward == backward
    assert len(set(forward.values())) > 1  # both successes and failures were drawn
