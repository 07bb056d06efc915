"""FineractClient against recorded wire shapes (respx): parsing, paging, error classification,
retries. The same client is exercised against the sandbox over real HTTP in
tests/integration/test_fineract_contract.py."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal

import httpx
import pytest
import respx

from lending_pipelines.resources.fineract import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    TENANT_HEADER,
    FineractFinalError,
    FineractPayloadError,
    FineractResource,
    FineractRetryableError,
    format_command_date,
    parse_loan,
)

BASE = "https://fineract.example.test"
LOANS = f"{BASE}{API_PREFIX}/loans"


def client(**overrides):
    settings = {"max_attempts": 3, "backoff_base_seconds": 0.0, "page_size": 2}
    settings.update(overrides)
    resource = FineractResource(**settings)
    return resource.client_for(
        base_url=BASE, tenant_id="acme", username="mifos", password="s3cr3t-pass"
    )


def loan_json(loan_id: int, status: int = 200, **extra) -> dict:
    body = {
        "id": loan_id,
        "accountNo": f"{loan_id:09d}",
        "status": {"id": status, "code": "loanStatusType.approved", "value": "Approved"},
        "clientId": 7,
        "loanProductId": 3,
        "currency": {"code": "KES", "decimalPlaces": 2},
        "principal": 5000.000000,
        "timeline": {"submittedOnDate": [2024, 10, 1], "approvedOnDate": [2024, 10, 2]},
    }
    body.update(extra)
    return body


def page(total: int, *loans: dict) -> httpx.Response:
    return httpx.Response(200, json={"totalFilteredRecords": total, "pageItems": list(loans)})


def api_error(status: int, code: str, nested: str | None = None) -> httpx.Response:
    errors = [{"userMessageGlobalisationCode": nested, "defaultUserMessage": "nested"}]
    return httpx.Response(
        status,
        json={
            "developerMessage": "dev",
            "httpStatusCode": str(status),
            "defaultUserMessage": "user message",
            "userMessageGlobalisationCode": code,
            "errors": errors if nested else [],
        },
    )


def test_a_loan_parses_ymd_dates_decimal_amounts_and_omitted_fields():
    raw = json.loads(
        json.dumps(loan_json(42)).replace("5000.0", "5000.000000"),
        parse_float=Decimal,
    )
    loan = parse_loan("acme", raw)
    assert loan.approved_on == date(2024, 10, 2)
    assert loan.principal == Decimal("5000.000000") and isinstance(loan.principal, Decimal)
    # externalId, approvedPrincipal, summary were omitted (nulls are not serialised)
    assert loan.external_id is None and loan.total_outstanding is None
    assert loan.disbursal_amount == Decimal("5000")


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("principal", "abc", "field 'principal' is 'abc', expected a decimal"),
        ("timeline", {"approvedOnDate": [2024, 13, 2]}, "field 'timeline.approvedOnDate'"),
        ("status", None, "field 'status' is None"),
        ("clientId", "seven", "field 'clientId' is 'seven', expected an integer"),
    ],
)
def test_a_malformed_loan_names_tenant_loan_field_and_value(field, value, fragment):
    raw = loan_json(1042)
    raw[field] = value
    with pytest.raises(FineractPayloadError) as caught:
        parse_loan("acme", raw)
    message = str(caught.value)
    assert "tenant 'acme'" in message and "loan 1042" in message and fragment in message


@respx.mock
def test_listing_sends_limit_and_pages_until_total_filtered_records():
    route = respx.get(LOANS).mock(
        side_effect=[
            page(5, loan_json(1), loan_json(2)),
            page(5, loan_json(3), loan_json(4)),
            page(5, loan_json(5)),
        ]
    )
    listing = client().list_loans(200)
    assert [loan.id for loan in listing.loans] == [1, 2, 3, 4, 5]
    assert listing.pages == 3
    offsets = [call.request.url.params["offset"] for call in route.calls]
    assert offsets == ["0", "2", "4"]
    first = route.calls[0].request
    assert first.url.params["limit"] == "2" and first.url.params["status"] == "200"
    assert first.headers[TENANT_HEADER] == "acme"
    assert first.headers["Authorization"].startswith("Basic ")


@respx.mock
def test_sql_search_mode_filters_with_sqlsearch_for_servers_before_1_9():
    route = respx.get(LOANS).mock(return_value=page(1, loan_json(1)))
    resource = FineractResource(filter_mode="sqlSearch", backoff_base_seconds=0)
    old = resource.client_for(base_url=BASE, tenant_id="umoja", username="u", password="p")
    old.list_loans(200)
    params = route.calls[0].request.url.params
    assert params["sqlSearch"] == "l.loan_status_id=200" and "status" not in params


@respx.mock
def test_loans_of_another_status_are_dropped_when_the_server_ignores_the_filter():
    respx.get(LOANS).mock(
        return_value=httpx.Response(
            200,
            json={"totalFilteredRecords": 2, "pageItems": [loan_json(1), loan_json(2, status=300)]},
        )
    )
    listing = client().list_loans(200)
    assert [loan.id for loan in listing.loans] == [1]
    assert listing.other_status_dropped == 1


@respx.mock
def test_async_listing_fetches_every_page_once_and_deduplicates_shifted_rows():
    def by_offset(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        # loan 2 shows up twice because a row before it disappeared between pages
        ids = {0: [1, 2], 2: [2, 3], 4: [4]}[offset]
        return page(5, *(loan_json(i) for i in ids))

    route = respx.get(LOANS).mock(side_effect=by_offset)
    listing = asyncio.run(client().alist_loans(200))
    assert sorted(loan.id for loan in listing.loans) == [1, 2, 3, 4]
    assert sorted(call.request.url.params["offset"] for call in route.calls) == ["0", "2", "4"]


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, "validation.msg.validation.errors.exist", False),
        (401, None, False),
        (403, "error.msg.not.authorized", False),
        (404, "error.msg.loan.id.invalid", False),
        (409, "error.msg.loan.locked", True),
        (425, "error.msg.idempotent.request.in.progress", True),
        (500, "error.msg.platform.server.side.error", True),
        (503, None, True),
    ],
)
@respx.mock
def test_http_errors_are_classified_and_retried_only_when_retryable(status, code, retryable):
    if code is None:
        response = httpx.Response(status, text="Unauthorized")
    else:
        response = api_error(status, code)
    route = respx.get(f"{LOANS}/42").mock(return_value=response)
    expected = FineractRetryableError if retryable else FineractFinalError
    with pytest.raises(expected) as caught:
        client().get_loan(42)
    assert caught.value.status_code == status
    assert "tenant 'acme'" in str(caught.value) and f"HTTP {status}" in str(caught.value)
    assert route.call_count == (3 if retryable else 1)


@respx.mock
def test_a_locked_loan_is_retried_until_the_lock_clears():
    route = respx.get(f"{LOANS}/42").mock(
        side_effect=[
            api_error(409, "error.msg.loan.locked"),
            httpx.Response(200, json=loan_json(42)),
        ]
    )
    assert client().get_loan(42).id == 42
    assert route.call_count == 2


@respx.mock
def test_timeouts_connection_errors_and_cut_bodies_are_retryable():
    route = respx.get(f"{LOANS}/42").mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.ConnectError("refused"),
            httpx.Response(200, content=b'{"id": 42, "accou'),
        ]
    )
    with pytest.raises(FineractRetryableError) as caught:
        client().get_loan(42)
    assert "not valid JSON" in str(caught.value)
    assert route.call_count == 3


@respx.mock
def test_the_nested_error_code_is_reported_for_a_rejected_disbursement():
    respx.post(f"{LOANS}/42").mock(
        return_value=api_error(
            400,
            "validation.msg.validation.errors.exist",
            "error.msg.loan.disbursal.account.is.not.approve.not.disbursed.state",
        )
    )
    with pytest.raises(FineractFinalError) as caught:
        client().disburse(42, on=date(2024, 10, 3), reference="QJK12ABC34")
    assert "not.approve.not.disbursed.state" in str(caught.value)
    assert "error.msg.loan.disbursal.account.is.not.approve.not.disbursed.state" in (
        caught.value.error_codes
    )


@respx.mock
def test_disburse_sends_date_format_locale_external_id_and_a_loan_scoped_idempotency_key():
    answer = {
        "loanId": 42,
        "resourceId": 42,
        "subResourceId": 991,
        "subResourceExternalId": "mpesa-QJK12ABC34",
        "changes": {},
    }
    route = respx.post(f"{LOANS}/42").mock(
        return_value=httpx.Response(200, json=answer, headers={"x-served-from-cache": "true"})
    )
    result = client().disburse(
        42, on=date(2024, 10, 3), reference="QJK12ABC34", receipt_number="QJK12ABC34"
    )
    request = route.calls[0].request
    body = json.loads(request.content)
    assert request.url.params["command"] == "disburse"
    assert body == {
        "actualDisbursementDate": "03 October 2024",
        "dateFormat": "dd MMMM yyyy",
        "locale": "en",
        "externalId": "mpesa-QJK12ABC34",
        "receiptNumber": "QJK12ABC34",
    }
    assert request.headers[IDEMPOTENCY_HEADER] == "disburse-loan-42-QJK12ABC34"
    assert result.sub_resource_external_id == "mpesa-QJK12ABC34" and result.served_from_cache


@respx.mock
def test_repayment_posts_to_the_transactions_path_with_the_amount():
    route = respx.post(f"{LOANS}/42/transactions").mock(
        return_value=httpx.Response(200, json={"loanId": 42, "resourceId": 77})
    )
    result = client().repay(42, amount=Decimal("1250.50"), on=date(2024, 11, 1), reference="r-1")
    body = json.loads(route.calls[0].request.content)
    assert route.calls[0].request.url.params["command"] == "repayment"
    assert body["transactionAmount"] == 1250.5 and body["transactionDate"] == "01 November 2024"
    assert result.resource_id == 77


def test_command_dates_do_not_depend_on_the_process_locale():
    assert format_command_date(date(2024, 1, 5)) == "05 January 2024"


def test_a_partner_with_an_unusable_base_url_is_refused_with_the_tenant_named():
    with pytest.raises(ValueError, match="tenant 'x'.*'ftp://nope'"):
        FineractResource().client_for(
            base_url="ftp://nope", tenant_id="x", username="u", password="p"
        )
