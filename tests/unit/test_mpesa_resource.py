"""MpesaClient against recorded Daraja shapes (respx): token caching and refresh, B2C request
body, gateway errors (HTTP 500 + errorCode), what is retried and what is never resent, and
result-callback parsing."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
import respx

from lending_pipelines.resources.mpesa import (
    B2C_PATH,
    OAUTH_PATH,
    STATUS_PATH,
    TOKEN_CACHE,
    MpesaAuthError,
    MpesaDuplicateRequestError,
    MpesaFinalError,
    MpesaOutcomeUnknownError,
    MpesaPayloadError,
    MpesaResource,
    MpesaRetryableError,
    parse_result_callback,
)

BASE = "https://daraja.example.test"
ACK = {
    "ConversationID": "AG_20240706_20106e9209f64bebd05b",
    "OriginatorConversationID": "acme-42-1",
    "ResponseCode": "0",
    "ResponseDescription": "Accept the service request successfully.",
}


@pytest.fixture(autouse=True)
def fresh_token_cache():
    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


def client(**overrides):
    resource = MpesaResource(
        **{
            "base_url": BASE,
            "result_url": "https://hooks.example.test/mpesa/tok/result",
            "max_attempts": 3,
            "backoff_base_seconds": 0.0,
            **overrides,
        }
    )
    return resource.client_for(
        consumer_key="ck",
        consumer_secret="consumer-s3cret",
        shortcode="600981",
        initiator_name="testapi",
        security_credential="cred-s3cret",
    )


def gateway(status: int, code: str, message: str = "msg") -> httpx.Response:
    return httpx.Response(
        status, json={"requestId": "1-2-3", "errorCode": code, "errorMessage": message}
    )


def token(expires_in="3599", value="tok-1") -> httpx.Response:
    return httpx.Response(200, json={"access_token": value, "expires_in": expires_in})


def pay(c, ocid="acme-42-1"):
    return c.b2c_payment(originator_conversation_id=ocid, phone="254712345678", amount=1500)


@respx.mock
@pytest.mark.parametrize("expires_in", ["3599", 3599])
def test_the_token_is_fetched_once_and_reused_whatever_type_expires_in_has(expires_in):
    oauth = respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token(expires_in))
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(return_value=httpx.Response(200, json=ACK))
    c = client()
    for n in range(3):
        pay(c, f"acme-42-{n}")
    assert oauth.call_count == 1 and b2c.call_count == 3
    assert oauth.calls[0].request.url.params["grant_type"] == "client_credentials"
    assert b2c.calls[0].request.headers["Authorization"] == "Bearer tok-1"


@respx.mock
def test_a_token_close_to_expiry_is_refreshed_before_use():
    oauth = respx.get(f"{BASE}{OAUTH_PATH}").mock(
        side_effect=[token("30", "tok-1"), token("3599", "tok-2")]
    )
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(return_value=httpx.Response(200, json=ACK))
    c = client(token_refresh_margin_seconds=60)
    pay(c, "a")
    pay(c, "b")
    assert oauth.call_count == 2
    assert b2c.calls[1].request.headers["Authorization"] == "Bearer tok-2"


@respx.mock
def test_an_invalid_token_answer_refreshes_the_token_once_and_retries():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(side_effect=[token(value="old"), token(value="new")])
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(
        side_effect=[
            gateway(404, "404.001.03", "Invalid Access Token"),
            httpx.Response(200, json=ACK),
        ]
    )
    ack = pay(client())
    assert ack.conversation_id == ACK["ConversationID"]
    assert [c.request.headers["Authorization"] for c in b2c.calls] == ["Bearer old", "Bearer new"]


@respx.mock
def test_rejected_consumer_credentials_are_an_auth_error():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(
        return_value=gateway(400, "400.008.01", "Invalid Authentication passed")
    )
    with pytest.raises(MpesaAuthError, match="consumer key and secret"):
        client().access_token()


@respx.mock
def test_a_token_response_without_a_number_for_expires_in_names_the_field():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token("soon"))
    with pytest.raises(MpesaPayloadError, match="'expires_in' is 'soon'"):
        client().access_token()


@respx.mock
def test_the_b2c_body_has_the_v3_fields_and_the_callers_originator_id():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(return_value=httpx.Response(200, json=ACK))
    client().b2c_payment(
        originator_conversation_id="acme-42-1",
        phone="254712345678",
        amount=Decimal("1500"),
        occasion="acme-loan-42",
    )
    body = json.loads(b2c.calls[0].request.content)
    assert body == {
        "OriginatorConversationID": "acme-42-1",
        "InitiatorName": "testapi",
        "SecurityCredential": "cred-s3cret",
        "CommandID": "BusinessPayment",
        "Amount": 1500,
        "PartyA": "600981",
        "PartyB": "254712345678",
        "Remarks": "Loan disbursement",
        "QueueTimeOutURL": "https://hooks.example.test/mpesa/tok/result",
        "ResultURL": "https://hooks.example.test/mpesa/tok/result",
        "Occasion": "acme-loan-42",
    }


@pytest.mark.parametrize(
    ("phone", "amount"), [("0712345678", 100), ("254812345678", 100), ("254712345678", 10.5)]
)
def test_an_unusable_phone_or_fractional_amount_is_refused_before_anything_is_sent(phone, amount):
    with respx.mock:  # any request would fail the test: no routes are mocked
        with pytest.raises(ValueError):
            client().b2c_payment(originator_conversation_id="x", phone=phone, amount=amount)


@respx.mock
def test_a_duplicate_originator_id_means_already_sent_and_is_not_retried():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(
        return_value=gateway(500, "500.002.1001", "Duplicate OriginatorConversationID.")
    )
    with pytest.raises(MpesaDuplicateRequestError) as caught:
        pay(client())
    assert caught.value.originator_conversation_id == "acme-42-1"
    assert isinstance(caught.value, MpesaFinalError) and b2c.call_count == 1


@respx.mock
@pytest.mark.parametrize("code", ["500.003.02", "500.003.03"])
def test_spike_arrest_and_quota_violations_are_retried(code):
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(
        side_effect=[gateway(500, code), gateway(500, code), httpx.Response(200, json=ACK)]
    )
    assert pay(client()).response_code == "0"
    assert b2c.call_count == 3


@respx.mock
def test_spike_arrest_that_never_clears_is_a_retryable_error():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(return_value=gateway(500, "500.003.02"))
    with pytest.raises(MpesaRetryableError, match="500.003.02"):
        pay(client())
    assert b2c.call_count == 3


@respx.mock
@pytest.mark.parametrize(
    "answer",
    [gateway(500, "500.003.1001", "Internal Server Error"), httpx.ReadTimeout("no answer")],
)
def test_a_b2c_that_may_have_been_accepted_is_unknown_and_never_resent(answer):
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(side_effect=[answer])
    with pytest.raises(MpesaOutcomeUnknownError):
        pay(client())
    assert b2c.call_count == 1


@respx.mock
def test_a_b2c_whose_connection_was_refused_is_retried_because_nothing_was_sent():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=ACK)]
    )
    pay(client())
    assert b2c.call_count == 2


@respx.mock
def test_validation_errors_are_final():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    respx.post(f"{BASE}{B2C_PATH}").mock(
        return_value=gateway(400, "400.002.02", "Bad Request - Invalid Amount")
    )
    with pytest.raises(MpesaFinalError, match="400.002.02.*Invalid Amount"):
        pay(client())


@respx.mock
def test_a_status_query_is_retried_on_5xx_and_asks_by_originator_id():
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    query = respx.post(f"{BASE}{STATUS_PATH}").mock(
        side_effect=[gateway(500, "500.003.1001"), httpx.Response(200, json=ACK)]
    )
    client().transaction_status(originator_conversation_id="acme-42-1")
    body = json.loads(query.calls[1].request.content)
    assert query.call_count == 2
    assert body["OriginalConversationID"] == "acme-42-1" and body["Initiator"] == "testapi"
    assert body["CommandID"] == "TransactionStatusQuery" and body["IdentifierType"] == "4"
    assert body["Occasion"] == "acme-42-1"


SUCCESS = {
    "Result": {
        "ResultType": 0,
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": "acme-42-1",
        "ConversationID": "AG_20240706_1",
        "TransactionID": "SG632NMUAB",
        "ResultParameters": {
            "ResultParameter": [
                {"Key": "TransactionAmount", "Value": 10},
                {"Key": "TransactionReceipt", "Value": "SG632NMUAB"},
                {"Key": "B2CUtilityAccountAvailableFunds", "Value": 8959269.60},
            ]
        },
        "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "https://x"}},
    }
}


def test_a_success_callback_parses_receipt_and_amount():
    result = parse_result_callback(SUCCESS)
    assert result.succeeded and result.receipt == "SG632NMUAB" and result.amount == Decimal(10)
    assert not result.is_status_query


@pytest.mark.parametrize("code", [2001, "2001"])
def test_a_failure_callback_without_result_parameters_parses_with_int_or_string_codes(code):
    payload = json.loads(json.dumps(SUCCESS))
    payload["Result"].update(ResultCode=code, ResultDesc="The initiator information is invalid.")
    del payload["Result"]["ResultParameters"]
    result = parse_result_callback(payload)
    assert not result.succeeded and result.result_code == "2001"
    assert result.parameters == {} and result.amount is None


def test_string_zero_is_success_and_a_single_parameter_object_is_accepted():
    payload = json.loads(json.dumps(SUCCESS))
    payload["Result"]["ResultCode"] = "0"
    payload["Result"]["ResultParameters"] = {
        "ResultParameter": {"Key": "TransactionReceipt", "Value": "SG1"}
    }
    result = parse_result_callback(payload)
    assert result.succeeded and result.receipt == "SG1"


def test_a_status_query_result_names_the_payment_it_is_about():
    payload = {
        "Result": {
            "ResultType": 0,
            "ResultCode": 0,
            "ResultDesc": "ok",
            "OriginatorConversationID": "query-ocid",
            "ConversationID": "AG_query",
            "TransactionID": "SG632NMUAB",
            "ResultParameters": {
                "ResultParameter": [
                    {"Key": "OriginatorConversationID", "Value": "acme-42-1"},
                    {"Key": "TransactionStatus", "Value": "Completed"},
                    {"Key": "ReceiptNo", "Value": "SG632NMUAB"},
                    {"Key": "Amount", "Value": 1500},
                    {"Key": "CreditPartyCharges"},
                ]
            },
        }
    }
    result = parse_result_callback(payload)
    assert result.is_status_query and result.queried_originator_conversation_id == "acme-42-1"
    assert result.transaction_status == "Completed" and result.receipt == "SG632NMUAB"
    assert result.parameters["CreditPartyCharges"] is None


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({}, "'Result'"),
        ({"Result": {"ConversationID": "c", "ResultCode": 0}}, "OriginatorConversationID"),
        ({"Result": {"OriginatorConversationID": "o", "ConversationID": "c"}}, "ResultCode"),
        (
            {"Result": {"OriginatorConversationID": "o", "ConversationID": "c", "ResultCode": 0,
                        "ResultParameters": {"ResultParameter": [{"Value": 1}]}}},
            "has no Key",
        ),
    ],
)  # fmt: skip
def test_a_malformed_callback_names_the_field(payload, fragment):
    with pytest.raises(MpesaPayloadError, match=fragment):
        parse_result_callback(payload)


def test_the_callback_token_fills_the_url_template_and_its_absence_blocks_sending():
    template = "https://hooks.example.test/mpesa/{token}/result"
    with_token = MpesaResource(result_url=template, callback_token="tok-1")
    assert with_token.callback_urls() == (
        "https://hooks.example.test/mpesa/tok-1/result",
        "https://hooks.example.test/mpesa/tok-1/result",
    )
    assert "tok-1" not in repr(with_token)
    assert MpesaResource(result_url=template).callback_urls() == ("", "")


@pytest.mark.parametrize("code", [0.5, "0.4", Decimal("0.1"), "", " ", "0-0", [0]])
def test_a_non_integer_result_code_is_a_malformed_callback_not_a_success(code):
    payload = json.loads(json.dumps(SUCCESS))
    payload["Result"]["ResultCode"] = code
    with pytest.raises(MpesaPayloadError, match="'Result.ResultCode'"):
        parse_result_callback(payload)


@pytest.mark.parametrize("code", [0, "0", 0.0, "SFC_IC0003", "R000002"])
def test_integer_and_documented_alphanumeric_result_codes_parse(code):
    payload = json.loads(json.dumps(SUCCESS))
    payload["Result"]["ResultCode"] = code
    assert parse_result_callback(payload).result_code == str(code).replace(".0", "")


@respx.mock
@pytest.mark.parametrize("missing", ["ConversationID", "OriginatorConversationID", "ResponseCode"])
def test_a_b2c_acknowledgement_with_missing_fields_is_an_unknown_outcome_not_a_final_one(missing):
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    ack = {k: v for k, v in ACK.items() if k != missing}
    b2c = respx.post(f"{BASE}{B2C_PATH}").mock(return_value=httpx.Response(200, json=ack))
    with pytest.raises(MpesaOutcomeUnknownError, match=missing) as caught:
        pay(client())
    assert not isinstance(caught.value, MpesaFinalError) and b2c.call_count == 1
