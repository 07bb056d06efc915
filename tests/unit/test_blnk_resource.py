"""Blnk client contract tests (the client `BlnkResource` builds): every method against the
sandbox's Blnk over real HTTP, and the recorded error shapes of both Blnk generations (>= 0.15
and legacy) with respx."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from lending_pipelines.partners.blnk import (
    BlnkAuthError,
    BlnkClient,
    BlnkConflictError,
    BlnkFinalError,
    BlnkInsufficientFundsError,
    BlnkNotFoundError,
    BlnkPayloadError,
    BlnkRetryableError,
    parse_error_body,
)
from lending_pipelines.resources.blnk import BlnkResource

FAKE = "http://blnk.test"


def make(base_url: str, **overrides) -> BlnkClient:
    return BlnkResource(
        base_url=base_url, backoff_seconds=0.01, timeout=5, **overrides
    ).get_client()


@pytest.fixture
def blnk(sandbox) -> BlnkClient:
    client = make(sandbox.url("blnk"))
    yield client
    client.close()


def funded_wallet(blnk: BlnkClient, amount: int, currency: str = "RWF") -> str:
    ledger = blnk.create_ledger("wallets")
    wallet = blnk.create_balance(ledger.ledger_id, currency)
    if amount:
        blnk.create_transaction(
            reference=f"fund:{wallet.balance_id}",
            source=f"@World{currency}",
            destination=wallet.balance_id,
            precise_amount=amount,
            currency=currency,
            precision=1,
            description="funding",
        )
    return wallet.balance_id


def txn_json(**overrides) -> dict:
    body = {
        "transaction_id": "txn_1",
        "reference": "ref-1",
        "status": "APPLIED",
        "precise_amount": 125034,
        "amount": 1250.34,
        "precision": 100,
        "currency": "KES",
        "source": "bln_a",
        "destination": "bln_b",
        "description": "d",
        "parent_transaction": "",
        "meta_data": {},
    }
    body.update(overrides)
    return body


# --- against the sandbox over HTTP ------------------------------------------------------------


def test_ledgers_and_balances_are_created_and_read_back_in_minor_units(blnk):
    ledger = blnk.create_ledger("escrow", {"owner": "ops"})
    assert blnk.get_ledger(ledger.ledger_id).name == "escrow"
    balance = blnk.create_balance(
        ledger.ledger_id, "RWF", indicator="wallet:r1", meta_data={"retailer": "r1"}
    )
    assert balance.balance_id.startswith("bln_")
    assert (balance.balance, balance.currency, balance.ledger_id) == (0, "RWF", ledger.ledger_id)
    assert blnk.get_balance_by_indicator("wallet:r1", "RWF").balance_id == balance.balance_id
    with pytest.raises(BlnkNotFoundError, match="ledger"):
        blnk.create_balance("ldg_missing", "RWF")


def test_a_transfer_moves_integer_minor_units_and_world_may_go_negative(blnk):
    wallet = funded_wallet(blnk, 25_000)
    assert blnk.get_balance(wallet).balance == 25_000
    world = blnk.get_balance_by_indicator("@WorldRWF", "RWF")
    assert world.balance == -25_000


def test_posting_the_same_reference_twice_moves_money_once_and_reports_already_applied(
    blnk, sandbox
):
    wallet = funded_wallet(blnk, 50_000)
    pool = blnk.create_balance("general_ledger_id", "RWF").balance_id
    args = dict(
        reference="auto-deduct:r1:2026-03-01",
        source=wallet,
        destination=pool,
        precise_amount=12_000,
        currency="RWF",
        precision=1,
        description="auto-deduct",
    )
    first = blnk.create_transaction(**args)
    second = blnk.create_transaction(**args)
    assert (first.already_applied, second.already_applied) == (False, True)
    assert first.transaction.status == "APPLIED"
    assert second.transaction.transaction_id == first.transaction.transaction_id
    assert blnk.get_balance(wallet).balance == 38_000
    assert blnk.get_balance(pool).balance == 12_000
    state = sandbox.state("blnk")
    assert state["post_attempts"]["auto-deduct:r1:2026-03-01"] == 2
    assert state["rejected_duplicates"] == ["auto-deduct:r1:2026-03-01"]


def test_a_duplicate_in_the_legacy_shape_is_also_resolved_by_reference(blnk, sandbox):
    sandbox.configure("blnk", {"legacy_errors": True})
    wallet = funded_wallet(blnk, 10_000)
    args = dict(
        reference="escrow-release:7",
        source=wallet,
        destination="@Wholesaler7",
        precise_amount=4_000,
        currency="RWF",
        precision=1,
        description="release",
    )
    first = blnk.create_transaction(**args)
    second = blnk.create_transaction(**args)
    assert second.already_applied and second.transaction == first.transaction
    assert blnk.get_balance(wallet).balance == 6_000


def test_insufficient_funds_is_a_distinct_final_error_and_moves_nothing(blnk):
    wallet = funded_wallet(blnk, 1_000)
    with pytest.raises(BlnkInsufficientFundsError, match="insufficient funds") as info:
        blnk.create_transaction(
            reference="too-much",
            source=wallet,
            destination="@Sink",
            precise_amount=1_001,
            currency="RWF",
            precision=1,
            description="x",
        )
    assert not info.value.retryable and info.value.code == "TXN_INSUFFICIENT_FUNDS"
    assert blnk.get_balance(wallet).balance == 1_000
    assert blnk.find_transaction_by_reference("too-much") is None


def test_transactions_are_read_by_id_and_by_reference(blnk):
    posted = blnk.create_transaction(
        reference="order/42:release",
        source="@World",
        destination="@Escrow",
        precise_amount=99,
        currency="KES",
        description="seed",
        meta_data={"order": 42},
    )
    by_id = blnk.get_transaction(posted.transaction.transaction_id)
    by_ref = blnk.get_transaction_by_reference("order/42:release")
    assert by_id == by_ref == posted.transaction
    assert (by_ref.precise_amount, by_ref.precision, by_ref.meta_data) == (99, 100, {"order": 42})
    with pytest.raises(BlnkNotFoundError):
        blnk.get_transaction("txn_missing")
    assert blnk.find_transaction_by_reference("never-posted") is None


def test_queued_mode_answers_queued_and_the_outcome_is_the_q_child(blnk, sandbox):
    wallet = funded_wallet(blnk, 500)
    queued = blnk.create_transaction(
        reference="q-ok",
        source=wallet,
        destination="@Sink",
        precise_amount=200,
        currency="RWF",
        precision=1,
        description="queued",
        skip_queue=False,
    )
    assert queued.transaction.status == "QUEUED"
    outcome = blnk.queued_outcome("q-ok")
    assert outcome.status == "APPLIED"
    assert outcome.parent_transaction == queued.transaction.transaction_id
    rejected = blnk.create_transaction(
        reference="q-too-much",
        source=wallet,
        destination="@Sink",
        precise_amount=10_000,
        currency="RWF",
        precision=1,
        description="queued",
        skip_queue=False,
    )
    assert rejected.transaction.status == "QUEUED"
    assert blnk.queued_outcome("q-too-much").rejection_reason == (
        "insufficient funds in source balance"
    )
    # A queued duplicate is accepted with 201 and silently dropped: no second movement.
    again = blnk.create_transaction(
        reference="q-ok",
        source=wallet,
        destination="@Sink",
        precise_amount=200,
        currency="RWF",
        precision=1,
        description="queued",
        skip_queue=False,
    )
    assert again.transaction.status == "QUEUED" and not again.already_applied
    assert blnk.get_balance(wallet).balance == 300
    assert sandbox.state("blnk")["dropped_duplicates"] == ["q-ok"]


def test_a_queued_post_is_read_through_its_q_outcome_and_awaited_while_blnk_holds_it(blnk, sandbox):
    wallet = funded_wallet(blnk, 500)
    post = dict(
        reference="q-held",
        source=wallet,
        destination="@Sink",
        precise_amount=200,
        currency="RWF",
        precision=1,
        description="queued",
        skip_queue=False,
    )
    sandbox.configure("blnk", {"hold_queue": True})
    first = blnk.transfer(**post)
    assert first.awaiting and first.queued.status == "QUEUED"  # never taken as the outcome
    assert blnk.read_outcome("q-held").awaiting
    assert blnk.get_balance(wallet).balance == 500
    sandbox.configure("blnk", {"hold_queue": False})  # the queue worker catches up
    outcome = blnk.read_outcome("q-held")
    assert (outcome.transaction.status, outcome.transaction.reference) == ("APPLIED", "q-held_q")
    assert outcome.differences(amount=200, currency="RWF", source=wallet, destination=wallet) == [
        f"destination is {outcome.transaction.destination!r}, expected {wallet!r}"
    ]
    # Posting again (a re-run) is dropped by Blnk; the outcome is the first post's, recovered.
    again = blnk.transfer(**post)
    assert (
        again.recovered and again.transaction.transaction_id == outcome.transaction.transaction_id
    )
    # The synchronous path reads a queued duplicate through <ref>_q as well.
    synchronous = blnk.transfer(**{**post, "skip_queue": True})
    assert synchronous.recovered and synchronous.transaction.status == "APPLIED"
    assert blnk.get_balance(wallet).balance == 300


def test_an_inflight_hold_commits_partially_then_fully_and_a_second_commit_is_already_applied(
    blnk,
):
    wallet = funded_wallet(blnk, 10_000)
    hold = blnk.create_transaction(
        reference="hold-1",
        source=wallet,
        destination="@Merchant",
        precise_amount=6_000,
        currency="RWF",
        precision=1,
        description="hold",
        inflight=True,
    ).transaction
    assert hold.status == "INFLIGHT"
    held = blnk.get_balance(wallet)
    assert (held.balance, held.inflight_debit_balance, held.available) == (10_000, 6_000, 4_000)
    partial = blnk.commit_inflight(hold.transaction_id, precise_amount=2_500)
    assert (partial.transaction.status, partial.transaction.precise_amount) == ("APPLIED", 2_500)
    assert partial.transaction.parent_transaction == hold.transaction_id
    rest = blnk.commit_inflight(hold.transaction_id)
    assert rest.transaction.precise_amount == 3_500 and not rest.already_applied
    again = blnk.commit_inflight(hold.transaction_id)
    assert again.already_applied and again.transaction.transaction_id == hold.transaction_id
    settled = blnk.get_balance(wallet)
    assert (settled.balance, settled.inflight_debit_balance) == (4_000, 0)
    with pytest.raises(BlnkConflictError, match="TXN_ALREADY_COMMITTED"):
        blnk.void_inflight(hold.transaction_id)


def test_voiding_a_hold_releases_it_and_commit_after_void_is_a_conflict(blnk):
    wallet = funded_wallet(blnk, 1_000)
    hold = blnk.create_transaction(
        reference="hold-2",
        source=wallet,
        destination="@Merchant",
        precise_amount=1_000,
        currency="RWF",
        precision=1,
        description="hold",
        inflight=True,
    ).transaction
    voided = blnk.void_inflight(hold.transaction_id)
    assert voided.transaction.status == "VOID"
    assert blnk.void_inflight(hold.transaction_id).already_applied
    with pytest.raises(BlnkConflictError, match="TXN_ALREADY_VOIDED"):
        blnk.commit_inflight(hold.transaction_id)
    assert blnk.get_balance(wallet).available == 1_000


def test_the_default_queued_inflight_answer_of_blnk_0_15_is_understood(sandbox):
    blnk = make(sandbox.url("blnk"), skip_queue=False)
    hold = blnk.create_transaction(
        reference="hold-3",
        source="@World",
        destination="@Merchant",
        precise_amount=700,
        currency="RWF",
        precision=1,
        description="hold",
        inflight=True,
        skip_queue=True,
    ).transaction
    answer = blnk.commit_inflight(hold.transaction_id)
    assert answer.transaction.transaction_id == hold.transaction_id
    assert answer.transaction.status == "INFLIGHT"  # the queued answer echoes the parent
    assert blnk.get_balance_by_indicator("@Merchant", "RWF").balance == 700


def test_server_errors_are_retried_until_the_post_lands_exactly_once(blnk, sandbox):
    sandbox.set_faults({"blnk": {"error_rate": 0.3, "malformed_rate": 0.2}})
    client = make(sandbox.url("blnk"), retries=12)
    for n in range(30):
        client.create_transaction(
            reference=f"flaky-{n}",
            source="@World",
            destination="@Pool",
            precise_amount=10,
            currency="RWF",
            precision=1,
            description="retry",
        )
    sandbox.clear_faults()
    state = sandbox.state("blnk")
    references = [t["reference"] for t in state["transactions"]]
    assert sorted(r for r in references if r.startswith("flaky-")) == sorted(
        f"flaky-{n}" for n in range(30)
    )
    assert client.get_balance_by_indicator("@Pool", "RWF").balance == 300
    client.close()


def test_a_timeout_is_retryable_and_named(sandbox):
    sandbox.set_faults({"blnk": {"timeout_rate": 1.0}})
    client = BlnkResource(base_url=sandbox.url("blnk"), timeout=0.05, retries=1).get_client()
    with pytest.raises(BlnkRetryableError, match="timed out"):
        client.get_balance("bln_x")


def test_secure_mode_requires_the_key_in_x_blnk_key(sandbox):
    sandbox.configure("blnk", {"secret_key": "k-123"})
    with pytest.raises(BlnkAuthError, match="AUTH_MISSING_API_KEY"):
        make(sandbox.url("blnk")).create_ledger("x")
    with pytest.raises(BlnkAuthError, match="AUTH_INVALID_API_KEY"):
        make(sandbox.url("blnk"), api_key="wrong").create_ledger("x")
    assert make(sandbox.url("blnk"), api_key="k-123").create_ledger("x").name == "x"


def test_a_blnk_validation_error_is_final_and_carries_the_message(blnk):
    with pytest.raises(BlnkFinalError, match="currency"):
        blnk.create_transaction(
            reference="bad-currency",
            source=funded_wallet(blnk, 10),
            destination="@Sink",
            precise_amount=5,
            currency="KES",
            description="wallet is RWF",
        )


def test_the_client_refuses_bad_posts_before_sending():
    client = make(FAKE)
    with pytest.raises(ValueError, match="description"):
        client.create_transaction(
            reference="r",
            source="a",
            destination="b",
            precise_amount=1,
            currency="RWF",
            description="",
        )
    with pytest.raises(TypeError, match="minor units"):
        client.create_transaction(
            reference="r",
            source="a",
            destination="b",
            precise_amount=1.5,
            currency="RWF",
            description="d",
        )
    with pytest.raises(ValueError, match="> 0"):
        client.create_transaction(
            reference="r",
            source="a",
            destination="b",
            precise_amount=0,
            currency="RWF",
            description="d",
        )


# --- recorded error shapes (respx) -------------------------------------------------------------


DUPLICATE_015 = {
    "error": "reference ref-1 has already been used",
    "error_detail": {
        "code": "TXN_DUPLICATE_REFERENCE",
        "message": "reference ref-1 has already been used",
    },
}
DUPLICATE_LEGACY = {"error": "reference ref-1 has already been used"}


@pytest.mark.parametrize(
    ("status", "body"), [(409, DUPLICATE_015), (400, DUPLICATE_LEGACY)], ids=["v0.15", "legacy"]
)
@respx.mock
def test_a_recorded_duplicate_reference_in_either_version_means_already_applied(status, body):
    post = respx.post(f"{FAKE}/transactions").respond(status, json=body)
    get = respx.get(f"{FAKE}/transactions/reference/ref-1").respond(200, json=txn_json())
    posted = make(FAKE).create_transaction(
        reference="ref-1",
        source="bln_a",
        destination="bln_b",
        precise_amount=125034,
        currency="KES",
        description="d",
    )
    assert posted.already_applied and posted.transaction.transaction_id == "txn_1"
    assert post.call_count == 1 and get.call_count == 1


@pytest.mark.parametrize(
    "body",
    [
        {
            "error": "insufficient funds in source balance",
            "error_detail": {"code": "TXN_INSUFFICIENT_FUNDS", "message": "insufficient funds"},
        },
        {"error": "failed to apply transaction: insufficient funds in source balance"},
    ],
    ids=["v0.15", "legacy"],
)
@respx.mock
def test_recorded_insufficient_funds_in_either_version_is_final_and_not_retried(body):
    route = respx.post(f"{FAKE}/transactions").respond(400, json=body)
    with pytest.raises(BlnkInsufficientFundsError):
        make(FAKE).create_transaction(
            reference="r",
            source="a",
            destination="b",
            precise_amount=1,
            currency="RWF",
            description="d",
        )
    assert route.call_count == 1


@respx.mock
def test_5xx_and_429_are_retried_with_backoff_then_succeed():
    route = respx.post(f"{FAKE}/transactions").mock(
        side_effect=[
            httpx.Response(500, json={"error": "internal server error"}),
            httpx.Response(
                429,
                json={
                    "error": "rate limit exceeded",
                    "error_detail": {"code": "GEN_RATE_LIMITED", "message": "slow down"},
                },
            ),
            httpx.Response(503, text="upstream unavailable"),
            httpx.Response(201, json=txn_json()),
        ]
    )
    posted = make(FAKE, retries=3).create_transaction(
        reference="ref-1",
        source="bln_a",
        destination="bln_b",
        precise_amount=125034,
        currency="KES",
        description="d",
    )
    assert route.call_count == 4 and not posted.already_applied


@respx.mock
def test_retries_are_bounded_and_the_last_error_is_raised():
    route = respx.get(f"{FAKE}/balances/bln_a").respond(502, text="bad gateway")
    with pytest.raises(BlnkRetryableError, match="HTTP 502"):
        make(FAKE, retries=2).get_balance("bln_a")
    assert route.call_count == 3


@respx.mock
def test_a_parse_failure_names_the_object_the_field_and_the_value():
    respx.get(f"{FAKE}/transactions/txn_1").respond(200, json=txn_json(precise_amount="12,5"))
    with pytest.raises(BlnkPayloadError) as info:
        make(FAKE).get_transaction("txn_1")
    message = str(info.value)
    assert "transaction 'txn_1'" in message
    assert "'precise_amount'" in message and "'12,5'" in message
    respx.get(f"{FAKE}/balances/bln_x").respond(
        200, json={"balance_id": "bln_x", "currency": "RWF", "balance": 1.5}
    )
    with pytest.raises(BlnkPayloadError, match=r"balance 'bln_x': field 'balance' is 1\.5"):
        make(FAKE).get_balance("bln_x")


@respx.mock
def test_amounts_sent_as_digit_strings_or_only_as_amount_times_precision_are_read_exactly():
    respx.get(f"{FAKE}/transactions/txn_1").respond(
        200, json=txn_json(precise_amount="900000000000000001")
    )
    assert make(FAKE).get_transaction("txn_1").precise_amount == 900000000000000001
    body = txn_json()
    del body["precise_amount"]
    respx.get(f"{FAKE}/transactions/txn_2").respond(200, json=body)
    assert make(FAKE).get_transaction("txn_2").precise_amount == 125034


def test_both_error_shapes_are_parsed():
    assert parse_error_body(DUPLICATE_015).code == "TXN_DUPLICATE_REFERENCE"
    assert parse_error_body(DUPLICATE_LEGACY).code == "TXN_DUPLICATE_REFERENCE"
    assert parse_error_body({"errors": "description is required"}).message == (
        "description is required"
    )
    legacy_missing = parse_error_body({"error": "transaction with ID 'txn_9' not found"})
    assert legacy_missing.code == "TXN_NOT_FOUND"
    assert parse_error_body({"error": "Transaction already committed"}).code == (
        "TXN_ALREADY_COMMITTED"
    )


# --- secrets -----------------------------------------------------------------------------------


@respx.mock
def test_the_api_key_never_appears_in_logs_exceptions_or_repr(caplog):
    secret = "blnk-live-key-5f1e9c"
    caplog.set_level(logging.DEBUG)
    echoed = {"error": f"invalid API key {secret}"}
    respx.get(f"{FAKE}/balances/bln_a").respond(401, json=echoed)
    respx.get(f"{FAKE}/balances/bln_b").respond(500, json=echoed)
    respx.get(f"{FAKE}/ledgers/ldg_1").mock(side_effect=httpx.ConnectError("refused"))
    client = make(FAKE, api_key=secret, retries=1)
    resource = BlnkResource(base_url=FAKE, api_key=secret)
    texts = [repr(client), str(client), repr(resource), str(resource)]
    for call in (
        lambda: client.get_balance("bln_a"),
        lambda: client.get_balance("bln_b"),
        lambda: client.get_ledger("ldg_1"),
    ):
        with pytest.raises(Exception) as info:
            call()
        texts += [str(info.value), repr(info.value)]
    sent = respx.calls.last.request
    assert sent.headers["X-Blnk-Key"] == secret  # it is sent, only never shown
    texts += [record.getMessage() for record in caplog.records]
    assert not [text for text in texts if secret in text]


def test_the_api_key_never_leaks_against_the_secure_sandbox(sandbox, caplog):
    secret = "sandbox-secret-77"
    sandbox.configure("blnk", {"secret_key": secret})
    caplog.set_level(logging.DEBUG)
    client = make(sandbox.url("blnk"), api_key=secret)
    with pytest.raises(BlnkInsufficientFundsError) as info:
        client.create_transaction(
            reference="x",
            source=funded_wallet(client, 1),
            destination="@Sink",
            precise_amount=2,
            currency="RWF",
            precision=1,
            description="d",
        )
    texts = [str(info.value), repr(client)] + [r.getMessage() for r in caplog.records]
    assert not [text for text in texts if secret in text]
