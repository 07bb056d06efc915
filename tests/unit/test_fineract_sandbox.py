"""The sandbox's Fineract speaks Fineract's wire format — raw HTTP, no client in between."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from lending_dev.sandbox.fineract import API
from lending_pipelines.resources.fineract import format_command_date


@pytest.fixture
def http(sandbox):
    with httpx.Client(
        base_url=sandbox.url("fineract") + API,
        auth=("mifos", "acme-pass"),
        headers={"Fineract-Platform-TenantId": "acme"},
        timeout=5,
    ) as client:
        yield client


def test_an_approved_loan_has_ymd_dates_status_value_and_no_nulls_or_summary(http):
    loan = http.get("/loans", params={"status": 200, "limit": 1}).json()["pageItems"][0]
    assert loan["status"]["value"] == "Approved" and "description" not in loan["status"]
    assert isinstance(loan["timeline"]["approvedOnDate"], list)
    assert len(loan["timeline"]["approvedOnDate"]) == 3
    assert "actualDisbursementDate" not in loan["timeline"]  # null → omitted
    assert "summary" not in loan
    assert None not in loan.values()


def test_an_active_loan_carries_a_summary(http):
    loan = http.get("/loans", params={"status": 300, "limit": 1}).json()["pageItems"][0]
    assert loan["summary"]["totalOutstanding"] > 0


def test_without_limit_every_matching_loan_comes_back_and_offset_is_ignored(http):
    body = http.get("/loans", params={"status": 200, "offset": 50}).json()
    assert body["totalFilteredRecords"] == 60 and len(body["pageItems"]) == 60


def test_the_tenant_can_be_given_as_a_query_parameter(sandbox):
    response = httpx.get(
        sandbox.url("fineract") + API + "/loans",
        params={"tenantIdentifier": "kilimo", "limit": 1},
        auth=("mifos", "kilimo-pass"),
    )
    assert response.status_code == 200


def test_bad_credentials_get_401_with_the_basic_realm(sandbox):
    response = httpx.get(
        sandbox.url("fineract") + API + "/loans",
        headers={"Fineract-Platform-TenantId": "acme"},
        auth=("mifos", "nope"),
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Fineract Platform API"'


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"actualDisbursementDate": "03 October 2024", "locale": "en"},
         "validation.msg.missing.dateFormat.parameter"),
        ({"actualDisbursementDate": "03 October 2024", "dateFormat": "dd MMMM yyyy"},
         "validation.msg.missing.locale.parameter"),
        ({"dateFormat": "dd MMMM yyyy", "locale": "en"},
         "validation.msg.loan.disbursement.actualDisbursementDate.cannot.be.blank"),
        ({"actualDisbursementDate": "x", "dateFormat": "dd MMMM yyyy", "locale": "en",
          "colour": "blue"}, "error.msg.parameter.unsupported"),
    ],
)  # fmt: skip
def test_disburse_validation_answers_with_api_global_error_response(http, body, code):
    response = http.post("/loans/1", params={"command": "disburse"}, json=body)
    error = response.json()
    assert response.status_code == 400 and error["httpStatusCode"] == "400"
    assert error["errors"][0]["userMessageGlobalisationCode"] == code


def test_an_unknown_command_is_a_400(http):
    response = http.post("/loans/1", params={"command": "teleport"}, json={})
    assert response.status_code == 400


def test_idempotency_keys_are_scoped_by_action_not_by_loan(http):
    """Documented Fineract behaviour: the same key on another loan replays the first result,
    which is why the client puts the loan id in the key."""
    approved = date(*http.get("/loans/2").json()["timeline"]["approvedOnDate"])
    body = {
        "actualDisbursementDate": format_command_date(approved),
        "dateFormat": "dd MMMM yyyy",
        "locale": "en",
    }
    key = {"Idempotency-Key": "same"}
    first = http.post("/loans/2", params={"command": "disburse"}, json=body, headers=key)
    replay = http.post("/loans/3", params={"command": "disburse"}, json=body, headers=key)
    assert first.status_code == 200 and replay.headers["x-served-from-cache"] == "true"
    assert replay.json()["loanId"] == 2
    assert http.get("/loans/3").json()["status"]["id"] == 200
