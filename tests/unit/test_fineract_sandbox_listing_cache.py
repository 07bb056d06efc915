"""The sandbox's Fineract serialises a loan for the listing once per change of the loan (and per
`fields=` selection), not on every request: a polling benchmark's sandbox shares the machine's
two cores with the client it serves. The bytes on the wire stay exactly what they were."""

from __future__ import annotations

import json
from datetime import date

from starlette.testclient import TestClient

from lending_dev.sandbox.app import build_app
from lending_dev.sandbox.fineract import API
from lending_pipelines.partners.fineract import LIST_FIELDS
from lending_pipelines.resources.fineract import format_command_date

TENANT = {"id": "acme", "password": "acme-pass", "loans": 30, "invalid_phone_every": 0}


def sandbox() -> TestClient:
    app = build_app({"fineract": {"tenants": [TENANT]}}, faults={}, providers=["fineract"])
    http = TestClient(app, base_url="http://sandbox.test/fineract" + API)
    http.auth = ("mifos", "acme-pass")
    http.headers["Fineract-Platform-TenantId"] = "acme"
    return http


def listing(http: TestClient, **params):
    response = http.get("/loans", params={"orderBy": "id", "limit": 500, **params})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return response


def test_an_unchanged_book_is_listed_again_without_serialising_a_loan(monkeypatch):
    http = sandbox()
    first = listing(http, status=200, fields=LIST_FIELDS)
    full = listing(http)
    real_dumps = json.dumps
    calls: list[object] = []

    def counting_dumps(value, *args, **kwargs):
        calls.append(value)
        return real_dumps(value, *args, **kwargs)

    monkeypatch.setattr(json, "dumps", counting_dumps)
    again = listing(http, status=200, fields=LIST_FIELDS)
    full_again = listing(http)
    assert calls == []
    assert again.content == first.content and full_again.content == full.content
    compact = real_dumps(first.json(), ensure_ascii=False, separators=(",", ":")).encode()
    assert first.content == compact  # the same compact JSON a JSONResponse renders
    assert set(first.json()["pageItems"][0]) <= set(LIST_FIELDS.split(","))
    assert "loanType" in full.json()["pageItems"][0]  # no fields=: the whole loan


def test_a_disbursed_loan_is_listed_with_its_new_state():
    http = sandbox()
    before = {item["id"]: item for item in listing(http, fields=LIST_FIELDS).json()["pageItems"]}
    loan_id = next(i for i, item in before.items() if item["status"]["id"] == 200)
    approved = date(*before[loan_id]["timeline"]["approvedOnDate"])
    body = {
        "actualDisbursementDate": format_command_date(approved),
        "dateFormat": "dd MMMM yyyy",
        "locale": "en",
    }
    assert http.post(f"/loans/{loan_id}", params={"command": "disburse"}, json=body).is_success
    after = {item["id"]: item for item in listing(http, fields=LIST_FIELDS).json()["pageItems"]}
    assert after[loan_id]["status"]["id"] == 300 and "summary" in after[loan_id]
    assert after[loan_id]["timeline"]["actualDisbursementDate"] == list(approved.timetuple()[:3])
    approved_now = listing(http, status=200, fields=LIST_FIELDS).json()["pageItems"]
    assert loan_id not in {item["id"] for item in approved_now}
    assert {i: v for i, v in after.items() if i != loan_id} == {
        i: v for i, v in before.items() if i != loan_id
    }
