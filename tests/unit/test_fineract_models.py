"""Fineract payload models against malformed payloads, one row per case: every refusal is a
FineractPayloadError (a malformed loan in a listing a BadLoanRecord) naming tenant, loan, the
wire field and its value. Ids are JSON integers, dates `[y, m, d]`, amounts exact decimals."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
import respx

from lending_pipelines.partners.fineract import parse_borrower, parse_command_result
from lending_pipelines.resources.fineract import FineractPayloadError, parse_loan
from tests.unit.test_fineract_resource import LOANS, client, loan_json, page


def _exact(raw: dict) -> dict:
    """As the client decodes a body: JSON numbers with a fraction become Decimal."""
    return json.loads(json.dumps(raw), parse_float=Decimal)


def _without(key: str) -> dict:
    raw = _exact(loan_json(1042))
    del raw[key]
    return raw


def _with(path: str, value: object) -> dict:
    raw = _exact(loan_json(1042))
    *parents, leaf = path.split(".")
    target = raw
    for part in parents:
        target = target[part]
    target[leaf] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        # missing
        (_without("accountNo"), "loan 1042: field 'accountNo' is None, expected a string"),
        (_without("status"), "loan 1042: field 'status' is None, expected an object"),
        (_with("currency", {"name": "Kenyan Shilling"}),
         "loan 1042: field 'currency.code' is None, expected a string"),
        (_without("principal"), "loan 1042: field 'principal' is None, expected a decimal"),
        # wrong type
        (_with("status.id", "200"), "loan 1042: field 'status.id' is '200', expected an integer"),
        (_with("accountNo", 1042), "loan 1042: field 'accountNo' is 1042, expected a string"),
        (_with("clientId", 7.0), "loan 1042: field 'clientId' is 7.0, expected an integer"),
        (_with("id", True), "response: field 'id' is True, expected an integer"),
        (_with("timeline", [2024, 10, 2]),
         "loan 1042: field 'timeline' is [2024, 10, 2], expected an object"),
        # not an exact decimal
        (_with("principal", "12,500.00"),
         "loan 1042: field 'principal' is '12,500.00', expected a decimal"),
        (_with("principal", Decimal("NaN")), "field 'principal' is Decimal('NaN')"),
        (_with("approvedPrincipal", True),
         "loan 1042: field 'approvedPrincipal' is True, expected a decimal"),
        # bad dates: only [yyyy, m, d] of plain integers that make a day
        (_with("timeline.approvedOnDate", [2024, 2, 30]),
         "field 'timeline.approvedOnDate' is [2024, 2, 30], expected a date as [yyyy, m, d]"),
        (_with("timeline.approvedOnDate", "2024-10-02"),
         "field 'timeline.approvedOnDate' is '2024-10-02', expected a date as [yyyy, m, d]"),
        (_with("timeline.submittedOnDate", [2024, True, 1]),
         "field 'timeline.submittedOnDate' is [2024, True, 1], expected a date as [yyyy, m, d]"),
    ],
)  # fmt: skip
def test_a_malformed_loan_is_refused_naming_the_field_and_its_value(raw, fragment):
    with pytest.raises(FineractPayloadError) as caught:
        parse_loan("acme", raw)
    message = str(caught.value)
    assert message.startswith("Fineract tenant 'acme' ") and fragment in message


def test_an_amount_decoded_as_a_float_is_read_through_its_shortest_repr_not_its_binary_value():
    loan = parse_loan("acme", loan_json(1, principal=5000.1, netDisbursalAmount=4999.9))
    assert loan.principal == Decimal("5000.1") and loan.disbursal_amount == Decimal("4999.9")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"totalFilteredRecords": 1}, "field 'pageItems' is None, expected a list of loans"),
        ({"totalFilteredRecords": "1", "pageItems": []},
         "field 'totalFilteredRecords' is '1', expected an integer"),
        ({"totalFilteredRecords": 1, "pageItems": {"id": 1}},
         "field 'pageItems' is {'id': 1}, expected a list of loans"),
    ],
)  # fmt: skip
@respx.mock
def test_a_malformed_listing_page_fails_the_listing_naming_the_field(body, fragment):
    respx.get(LOANS).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(FineractPayloadError, match="tenant 'acme' response") as caught:
        client().list_loans(200)
    assert fragment in str(caught.value)


@respx.mock
def test_a_loan_with_an_iso_date_is_set_aside_as_a_bad_record_naming_the_date_field():
    bad = loan_json(2, timeline={"approvedOnDate": "2024-10-02"})
    respx.get(LOANS).mock(return_value=page(2, loan_json(1), bad))
    listing = client().list_loans(200)
    assert [loan.id for loan in listing.loans] == [1]
    assert [(b.loan_id, b.field, b.value, b.expected) for b in listing.bad_records] == [
        (2, "timeline.approvedOnDate", "'2024-10-02'", "a date as [yyyy, m, d]")
    ]


@pytest.mark.parametrize(
    ("transactions", "fragment"),
    [
        ({"externalId": "mpesa-X"}, "field 'transactions' is {'externalId': 'mpesa-X'}, "
                                    "expected a list of transactions"),
        ([{"externalId": 5}], "field 'transactions[0].externalId' is 5, expected a string"),
        (["mpesa-X"], "field 'transactions[0]' is 'mpesa-X', expected an object"),
    ],
)  # fmt: skip
@respx.mock
def test_malformed_loan_transactions_are_refused_naming_the_field(transactions, fragment):
    respx.get(f"{LOANS}/42").mock(
        return_value=httpx.Response(200, json={**loan_json(42), "transactions": transactions})
    )
    with pytest.raises(FineractPayloadError, match="loan 42") as caught:
        client().loan_transaction_external_ids(42)
    assert fragment in str(caught.value)


@respx.mock
def test_loan_transactions_without_an_external_id_are_skipped():
    body = {**loan_json(42), "transactions": [{"id": 1}, {"id": 2, "externalId": "mpesa-Q"}]}
    respx.get(f"{LOANS}/42").mock(return_value=httpx.Response(200, json=body))
    assert client().loan_transaction_external_ids(42) == ["mpesa-Q"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"displayName": "Jane"}, "field 'id' is None, expected an integer"),
        ({"id": 7, "mobileNo": 712345678},
         "field 'client[7].mobileNo' is 712345678, expected a string"),
        ({"id": 7, "active": "yes"}, "field 'client[7].active' is 'yes', expected true or false"),
    ],
)  # fmt: skip
def test_a_malformed_borrower_is_refused_naming_the_field(raw, fragment):
    with pytest.raises(FineractPayloadError) as caught:
        parse_borrower("acme", raw)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"resourceId": "77"}, "field 'resourceId' is '77', expected an integer"),
        ({"resourceId": 77, "changes": []}, "field 'changes' is [], expected an object"),
        ({"subResourceExternalId": 991}, "field 'subResourceExternalId' is 991, expected a string"),
    ],
)  # fmt: skip
def test_a_malformed_command_result_is_refused_naming_the_field(raw, fragment):
    with pytest.raises(FineractPayloadError, match="loan 42") as caught:
        parse_command_result("acme", 42, raw, served_from_cache=False)
    assert fragment in str(caught.value)
