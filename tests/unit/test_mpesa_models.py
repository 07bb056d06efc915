"""Daraja payload models against malformed payloads, one row per case: the result callback, the
acknowledgement and the OAuth token each refuse a payload with an MpesaPayloadError (or, for an
acknowledgement of a B2C, an unknown outcome) naming the field and its value — never a token."""

from __future__ import annotations

import copy
from decimal import Decimal

import httpx
import pytest
import respx

from lending_pipelines.resources.mpesa import (
    B2C_PATH,
    OAUTH_PATH,
    MpesaOutcomeUnknownError,
    MpesaPayloadError,
    parse_result_callback,
)
from tests.unit.test_mpesa_resource import ACK, BASE, SUCCESS, client, fresh_token_cache, pay, token

__all__ = ["fresh_token_cache"]  # the autouse fixture, imported for this module too


def _result(**changes) -> dict:
    payload = copy.deepcopy(SUCCESS)
    for key, value in changes.items():
        if value is ...:
            del payload["Result"][key]
        else:
            payload["Result"][key] = value
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # missing
        (_result(ConversationID=...), "M-Pesa result 'acme-42-1': field 'Result.ConversationID' "
                                      "is missing, expected a string"),
        (_result(ResultCode=...), "M-Pesa result 'acme-42-1': field 'Result.ResultCode' is "
                                  "missing, expected an integer code"),
        (_result(OriginatorConversationID=...), "M-Pesa callback: field "
         "'Result.OriginatorConversationID' is missing, expected a non-empty string"),
        ({"result": SUCCESS["Result"]}, "M-Pesa callback: field 'Result' is missing, expected "
                                        "an object"),
        # wrong type
        (_result(ResultType=0.5), "M-Pesa result 'acme-42-1': field 'Result.ResultType' is 0.5, "
                                  "expected an integer"),
        (_result(ResultType=True), "M-Pesa result 'acme-42-1': field 'Result.ResultType' is "
                                   "True, expected an integer"),
        (_result(TransactionID=["SG1"]), "M-Pesa result 'acme-42-1': field "
         "'Result.TransactionID' is ['SG1'], expected a string"),
        (_result(ResultDesc={"text": "ok"}), "M-Pesa result 'acme-42-1': field "
         "'Result.ResultDesc' is {'text': 'ok'}, expected a string"),
        (_result(ResultParameters=[{"Key": "Amount", "Value": 1}]), "M-Pesa result "
         "'acme-42-1': field 'Result.ResultParameters' is [{'Key': 'Amount', 'Value': 1}], "
         "expected an object"),
        (_result(ResultParameters={"ResultParameter": [{"Key": 5, "Value": 1}]}), "M-Pesa "
         "result 'acme-42-1': field 'Result.ResultParameters' is {'ResultParameter': [{'Key': 5, "
         "'Value': 1}]}, expected Key/Value items (item {'Key': 5, 'Value': 1} has no Key)"),
        # a fractional result code could be truncated into "0", a success
        (_result(ResultCode=Decimal("0.4")), "M-Pesa result 'acme-42-1': field "
         "'Result.ResultCode' is Decimal('0.4'), expected an integer code"),
    ],
)  # fmt: skip
def test_a_malformed_result_callback_is_refused_naming_the_field_and_its_value(payload, message):
    with pytest.raises(MpesaPayloadError) as caught:
        parse_result_callback(payload)
    assert str(caught.value) == message


def test_a_status_answer_reads_a_float_amount_through_its_repr_and_garbage_as_no_amount():
    answer = _result(
        ResultParameters={
            "ResultParameter": [
                {"Key": "TransactionStatus", "Value": "Completed"},
                {"Key": "Amount", "Value": 1500.5},
                {"Key": "TransactionReason", "Value": " 17 "},
            ]
        }
    )
    parsed = parse_result_callback(answer).status_answer()
    assert parsed.amount == Decimal("1500.5") and parsed.reason_code == "17"
    answer["Result"]["ResultParameters"]["ResultParameter"][1]["Value"] = "1,500"
    assert parse_result_callback(answer).status_answer().amount is None


@pytest.mark.parametrize(
    ("ack", "message"),
    [
        ({**ACK, "ResponseCode": 0.0}, "acknowledgement field 'ResponseCode' is 0.0, expected "
                                       "a non-empty string or an integer"),
        ({**ACK, "ConversationID": ""}, "acknowledgement field 'ConversationID' is '', expected "
                                        "a non-empty string or an integer"),
        ({**ACK, "OriginatorConversationID": None}, "acknowledgement field "
         "'OriginatorConversationID' is None, expected a non-empty string or an integer"),
    ],
)  # fmt: skip
@respx.mock
def test_a_malformed_b2c_acknowledgement_is_an_unknown_outcome_naming_the_field(ack, message):
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=token())
    respx.post(f"{BASE}{B2C_PATH}").mock(return_value=httpx.Response(200, json=ack))
    with pytest.raises(MpesaOutcomeUnknownError) as caught:
        pay(client())
    assert str(caught.value).endswith(message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"expires_in": "3599"}, "field 'access_token' is missing or empty"),
        ({"access_token": "", "expires_in": "3599"}, "field 'access_token' is missing or empty"),
        ({"access_token": 12345, "expires_in": "3599"}, "field 'access_token' is missing or "
                                                        "empty"),
        ({"access_token": "tok-secret"}, "field 'expires_in' is missing, expected seconds "
                                         "(int or string)"),
        ({"access_token": "tok-secret", "expires_in": 3599.5}, "field 'expires_in' is 3599.5, "
                                                               "expected seconds (int or string)"),
    ],
)  # fmt: skip
@respx.mock
def test_a_malformed_token_answer_names_the_field_and_never_the_token(body, message):
    respx.get(f"{BASE}{OAUTH_PATH}").mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(MpesaPayloadError) as caught:
        client().access_token()
    assert str(caught.value).endswith(message) and "tok-secret" not in str(caught.value)
