"""Blnk payload models against malformed bodies, one row per case: each refusal is a
BlnkPayloadError naming the object, the field and its value. Amounts are integers in minor units
(a JSON integer or a digit string, never a float)."""

from __future__ import annotations

import pytest
import respx

from lending_pipelines.partners.blnk import BlnkPayloadError
from tests.unit.test_blnk_resource import FAKE, make, txn_json

BALANCE = {"balance_id": "bln_x", "ledger_id": "ldg_1", "currency": "RWF", "balance": 1500}


def _balance(**changes) -> dict:
    return {key: value for key, value in {**BALANCE, **changes}.items() if value is not ...}


def _txn(**changes) -> dict:
    return {key: value for key, value in txn_json(**changes).items() if value is not ...}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # missing
        (_balance(balance=...), "balance 'bln_x': field 'balance' is None, expected an integer "
                                "(minor units)"),
        (_balance(currency=...), "balance 'bln_x': field 'currency' is None, expected a "
                                 "non-empty string"),
        # a float where an exact integer of minor units is the wire format
        (_balance(balance=1500.0), "balance 'bln_x': field 'balance' is 1500.0, expected an "
                                   "integer (minor units)"),
        (_balance(inflight_debit_balance="1,500"), "balance 'bln_x': field "
         "'inflight_debit_balance' is '1,500', expected an integer (minor units)"),
        # wrong type
        (_balance(version="3"), "balance 'bln_x': field 'version' is '3', expected an integer"),
        (_balance(indicator=5), "balance 'bln_x': field 'indicator' is 5, expected a string"),
        (_balance(meta_data=["x"]), "balance 'bln_x': field 'meta_data' is ['x'], expected an "
                                    "object"),
    ],
)  # fmt: skip
@respx.mock
def test_a_malformed_balance_is_refused_naming_the_field_and_its_value(body, message):
    respx.get(f"{FAKE}/balances/bln_x").respond(200, json=body)
    with pytest.raises(BlnkPayloadError) as caught:
        make(FAKE).get_balance("bln_x")
    assert str(caught.value) == f"blnk {message}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_txn(reference=...), "field 'reference' is None, expected a non-empty string"),
        (_txn(status=""), "field 'status' is '', expected a non-empty string"),
        (_txn(precise_amount=125034.0), "field 'precise_amount' is 125034.0, expected an "
                                        "integer (minor units)"),
        (_txn(precise_amount=True), "field 'precise_amount' is True, expected an integer "
                                    "(minor units)"),
        (_txn(precision="100"), "field 'precision' is '100', expected an integer >= 1"),
        (_txn(precision=0), "field 'precision' is 0, expected an integer >= 1"),
        (_txn(precise_amount=..., amount=1250.345), "field 'amount' is 1250.345, expected a "
                                                    "multiple of 1/100"),
        (_txn(precise_amount=..., amount="lots"), "field 'amount' is 'lots', expected a number"),
        (_txn(created_at=1767225600), "field 'created_at' is 1767225600, expected a string"),
    ],
)  # fmt: skip
@respx.mock
def test_a_malformed_transaction_is_refused_naming_the_field_and_its_value(body, message):
    respx.get(f"{FAKE}/transactions/txn_1").respond(200, json=body)
    with pytest.raises(BlnkPayloadError) as caught:
        make(FAKE).get_transaction("txn_1")
    assert str(caught.value) == f"blnk transaction 'txn_1': {message}"


@respx.mock
def test_a_body_that_is_not_an_object_names_what_was_asked_for():
    respx.get(f"{FAKE}/transactions/reference/ref-9").respond(200, json=["txn_1"])
    with pytest.raises(BlnkPayloadError, match=r"transaction 'ref-9': body is \['txn_1'\]"):
        make(FAKE).get_transaction_by_reference("ref-9")


@respx.mock
def test_nulls_for_optional_text_and_tags_read_as_empty_and_statuses_as_upper_case():
    body = _txn(status="applied", parent_transaction=None, meta_data=None, description=None)
    respx.get(f"{FAKE}/transactions/txn_1").respond(200, json=body)
    txn = make(FAKE).get_transaction("txn_1")
    assert (txn.status, txn.parent_transaction, txn.description, txn.meta_data) == (
        "APPLIED",
        "",
        "",
        {},
    )
    respx.get(f"{FAKE}/balances/bln_x").respond(200, json=_balance(indicator="", version=None))
    balance = make(FAKE).get_balance("bln_x")
    assert (balance.indicator, balance.version, balance.available) == (None, None, 1500)
