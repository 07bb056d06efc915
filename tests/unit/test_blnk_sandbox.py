"""The sandbox's Blnk speaks Blnk's wire format: validation, status codes, both error shapes,
inflight bookkeeping, double entry, deterministic ids. Raw HTTP, no client in between."""

from __future__ import annotations

import httpx
import pytest

from lending_dev.sandbox.blnk import BlnkSandbox
from lending_dev.sandbox.core import SandboxConfigError


@pytest.fixture
def http(sandbox):
    with httpx.Client(base_url=sandbox.url("blnk"), timeout=5) as client:
        yield client


def post_txn(http: httpx.Client, **overrides) -> httpx.Response:
    body = {
        "reference": "ref-1",
        "source": "@World",
        "destination": "@Pool",
        "precise_amount": 1000,
        "precision": 100,
        "currency": "KES",
        "description": "test",
        "skip_queue": True,
    }
    body.update(overrides)
    return http.post("/transactions", json={k: v for k, v in body.items() if v is not None})


@pytest.mark.parametrize(
    ("overrides", "code", "fragment"),
    [
        ({"description": None}, "TXN_VALIDATION_ERROR", "description is required"),
        ({"reference": ""}, "TXN_VALIDATION_ERROR", "reference is required"),
        ({"amount": 10.0}, "TXN_VALIDATION_ERROR", "cannot both be set"),
        ({"precise_amount": None}, "TXN_VALIDATION_ERROR", "is required"),
        ({"precise_amount": -5}, "TXN_INVALID_AMOUNT", "must be positive"),
        ({"precision": 2.5}, "TXN_PRECISION_NOT_INTEGER", "precision"),
        ({"destination": "@World"}, "TXN_VALIDATION_ERROR", "cannot be the same"),
        (
            {"precise_amount": None, "amount": 1234567890.1234567},
            "TXN_VALIDATION_ERROR",
            "15 significant digits",
        ),
    ],
)
def test_create_transaction_is_validated_like_blnk(http, overrides, code, fragment):
    response = post_txn(http, **overrides)
    assert response.status_code == 400
    body = response.json()
    assert fragment in body["errors"]
    assert body["error_detail"]["code"] == code


def test_amount_with_precision_becomes_precise_amount(http):
    response = post_txn(http, precise_amount=None, amount=1250.34, precision=100)
    assert response.status_code == 201
    body = response.json()
    assert (body["precise_amount"], body["amount"], body["status"]) == (125034, 1250.34, "APPLIED")
    assert body["transaction_id"].startswith("txn_") and body["source"].startswith("bln_")
    assert body["scheduled_for"] == "0001-01-01T00:00:00Z"


def test_skip_queue_duplicate_is_409_in_0_15_and_400_legacy(http, sandbox):
    assert post_txn(http).status_code == 201
    duplicate = post_txn(http)
    assert duplicate.status_code == 409
    assert duplicate.json()["error_detail"]["code"] == "TXN_DUPLICATE_REFERENCE"
    sandbox.configure("blnk", {"legacy_errors": True})
    legacy = post_txn(http)
    assert legacy.status_code == 400
    assert legacy.json() == {"error": "reference ref-1 has already been used"}


def test_insufficient_funds_without_overdraft_is_400_and_overdraft_limit_is_honoured(http):
    wallet = http.post("/balances", json={"ledger_id": "general_ledger_id", "currency": "KES"})
    wallet_id = wallet.json()["balance_id"]
    refused = post_txn(http, source=wallet_id, reference="a")
    assert refused.status_code == 400
    assert refused.json()["error_detail"]["code"] == "TXN_INSUFFICIENT_FUNDS"
    within = post_txn(
        http, source=wallet_id, reference="b", allow_overdraft=True, overdraft_limit=1000
    )
    assert within.status_code == 201
    beyond = post_txn(
        http, source=wallet_id, reference="c", allow_overdraft=True, overdraft_limit=1000
    )
    assert beyond.status_code == 400
    assert http.get(f"/balances/{wallet_id}").json()["balance"] == -1000


def test_unknown_ids_are_404_with_blnk_codes(http):
    assert http.get("/balances/bln_nope").json()["error_detail"]["code"] == "BAL_NOT_FOUND"
    missing = http.get("/transactions/txn_nope")
    assert missing.status_code == 404
    assert missing.json()["error_detail"]["code"] == "TXN_NOT_FOUND"
    by_ref = http.get("/transactions/reference/a/b:c")
    assert by_ref.status_code == 404 and "a/b:c" in by_ref.json()["error"]
    bad_status = http.put("/transactions/inflight/txn_nope", json={"status": "settle"})
    assert bad_status.json()["error_detail"]["code"] == "TXN_INVALID_STATUS_ACTION"


def test_inflight_hold_moves_inflight_balances_then_commit_moves_real_ones(http):
    hold = post_txn(http, reference="h", inflight=True).json()
    assert hold["status"] == "INFLIGHT"
    pool = http.get("/balances/indicator/@Pool/currency/KES").json()
    assert (pool["balance"], pool["inflight_credit_balance"], pool["inflight_balance"]) == (
        0,
        1000,
        1000,
    )
    queued = http.put(f"/transactions/inflight/{hold['transaction_id']}", json={"status": "commit"})
    assert queued.status_code == 200 and queued.json()["queued"] is True
    second = http.put(f"/transactions/inflight/{hold['transaction_id']}", json={"status": "void"})
    assert second.status_code == 409
    assert second.json()["error_detail"]["code"] == "TXN_ALREADY_COMMITTED"
    pool = http.get("/balances/indicator/@Pool/currency/KES").json()
    assert (pool["balance"], pool["inflight_balance"]) == (1000, 0)


def test_secure_mode_answers_401_without_the_key(http, sandbox):
    sandbox.configure("blnk", {"secret_key": "s3"})
    response = http.get("/ledgers")
    assert response.status_code == 401
    assert response.json()["error_detail"]["code"] == "AUTH_MISSING_API_KEY"
    assert http.get("/ledgers", headers={"X-Blnk-Key": "s3"}).status_code == 200


def test_fault_injection_uses_blnks_own_error_shapes(http, sandbox):
    sandbox.set_faults({"blnk": {"error_rate": 1.0}})
    failed = http.get("/ledgers")
    assert failed.status_code == 500
    assert failed.json()["error_detail"]["code"] == "GEN_INTERNAL"
    sandbox.set_faults({"blnk": {"error_rate": 0.0, "rate_limit_rate": 1.0}})
    limited = http.get("/ledgers")
    assert limited.status_code == 429
    assert limited.json()["error_detail"]["code"] == "GEN_RATE_LIMITED"


def test_the_ledger_stays_balanced_and_references_stay_unique(http, sandbox):
    sandbox.configure(
        "blnk",
        {
            "balances": [
                {"balance_id": "bln_w1", "currency": "RWF", "balance": 30_000},
                {"balance_id": "bln_w2", "currency": "RWF", "balance": 5_000},
            ]
        },
    )
    for n in range(5):
        post_txn(
            http,
            reference=f"m{n}",
            source="bln_w1",
            destination="bln_w2",
            currency="RWF",
            precise_amount=1_000,
            precision=1,
        )
        post_txn(
            http,
            reference=f"m{n}",
            source="bln_w1",
            destination="bln_w2",
            currency="RWF",
            precise_amount=1_000,
            precision=1,
        )
    state = sandbox.state("blnk")
    by_id = {b["balance_id"]: b["balance"] for b in state["balances"]}
    assert (by_id["bln_w1"], by_id["bln_w2"]) == (25_000, 10_000)
    assert sum(b["balance"] for b in state["balances"] if b["currency"] == "RWF") == 0
    references = [t["reference"] for t in state["transactions"]]
    assert len(references) == len(set(references))
    assert state["post_attempts"]["m0"] == 2


def test_configure_tops_a_balance_up_or_down_to_the_requested_amount(sandbox):
    sandbox.configure(
        "blnk", {"balances": [{"balance_id": "bln_t", "currency": "RWF", "balance": 9}]}
    )
    sandbox.configure(
        "blnk", {"balances": [{"balance_id": "bln_t", "currency": "RWF", "balance": 4}]}
    )
    balances = {b["balance_id"]: b for b in sandbox.state("blnk")["balances"]}
    assert balances["bln_t"]["balance"] == 4


def test_ids_are_deterministic_after_reset():
    def ids() -> list[str]:
        sandbox = BlnkSandbox(balances=[{"currency": "RWF", "balance": 10}])
        return [b["balance_id"] for b in sandbox.snapshot()["balances"]]

    assert ids() == ids()


def test_unknown_options_are_refused():
    with pytest.raises(SandboxConfigError, match="unknown option"):
        BlnkSandbox(legacy=True)
    with pytest.raises(SandboxConfigError, match="unknown key"):
        BlnkSandbox().configure({"faults": {}})
