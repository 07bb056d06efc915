"""Disbursement rules: attempt ids, result-code classification, backoff, amounts, success rate."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain.backoff import backoff_delay
from lending_pipelines.domain.disbursement import (
    DisbursementRuleError,
    StatusAnswer,
    Verdict,
    b2c_amount,
    classify_result,
    judge_status_answer,
    next_attempt_at,
    originator_conversation_id,
    status_query_outcome,
    success_rate,
)


def test_the_originator_id_is_deterministic_per_attempt_and_differs_between_attempts():
    first = originator_conversation_id("acme", 42, 1, 1)
    assert first == originator_conversation_id("acme", 42, 1, 1) == "acme-L42-T1-A1"
    assert originator_conversation_id("acme", 42, 1, 2) != first
    assert originator_conversation_id("kilimo", 42, 1, 1) != first
    with pytest.raises(ValueError):
        originator_conversation_id("acme", 42, 1, 0)


@pytest.mark.parametrize(
    ("code", "retryable", "fragment"),
    [
        ("1", True, "insufficient balance"),
        ("17", True, "internal failure"),
        ("26", True, "traffic blocking"),
        ("2001", False, "initiator"),
        ("2040", False, "not registered"),
        ("SFC_IC0003", False, "does not exist"),
        ("2", False, "below the M-Pesa minimum"),
        ("99999", False, "whatever M-Pesa said"),
    ],
)
def test_result_codes_are_classified(code, retryable, fragment):
    verdict = classify_result(code, "whatever M-Pesa said")
    assert verdict.retryable is retryable
    assert verdict.reason.startswith(f"{code}: ") and fragment in verdict.reason


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("Completed", "succeeded"), ("Failed", "failed"), ("Reversed", "failed"),
     ("Pending", "in_flight"), (None, "in_flight")],
)  # fmt: skip
def test_status_query_answers_map_to_outcomes(status, outcome):
    assert status_query_outcome(status) == outcome


@pytest.mark.parametrize(
    ("failed", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 30.0)]
)
def test_backoff_doubles_and_is_capped(failed, expected):
    assert backoff_delay(failed, base=1.0, cap=30.0) == expected


@given(
    st.integers(min_value=1, max_value=200),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=1000),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=0.999999),
)
def test_backoff_never_exceeds_the_cap_and_is_never_negative(failed, base, cap, jitter, rand):
    delay = backoff_delay(failed, base=base, cap=cap, jitter=jitter, rand=rand)
    assert 0 <= delay <= cap


def test_the_next_attempt_waits_longer_after_each_failure():
    now = datetime(2024, 10, 3, 12, 0, tzinfo=UTC)
    waits = [next_attempt_at(now, n, base_seconds=60, cap_seconds=3600) - now for n in (1, 2, 3)]
    assert waits == [timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=240)]


@pytest.mark.parametrize(
    ("minor", "currency", "expected"), [(500_000, "KES", 5000), (1_000, "KES", 10)]
)
def test_whole_shillings_within_the_b2c_range_are_paid(minor, currency, expected):
    assert b2c_amount(minor, currency) == expected


@pytest.mark.parametrize(
    ("minor", "currency", "fragment"),
    [
        (500_050, "KES", "not a whole number"),
        (900, "KES", "outside the M-Pesa B2C range"),
        (25_000_100, "KES", "outside the M-Pesa B2C range"),
        (500_000, "UGX", "KES only"),
    ],
)
def test_amounts_mpesa_cannot_pay_are_refused(minor, currency, fragment):
    with pytest.raises(DisbursementRuleError, match=fragment):
        b2c_amount(minor, currency)


def test_success_rate_counts_finished_disbursements_only():
    assert success_rate(0, 0) is None
    assert success_rate(9, 1) == Decimal("0.9")


FOUND = StatusAnswer(
    result_code="0",
    transaction_status="Completed",
    originator_conversation_id="acme-L1-T1-A1",
    conversation_id="AG_1",
    amount=Decimal(5000),
    receiver="254712345678 - JANE DOE",
    receipt="SX1",
)
OURS = {
    "originator_conversation_id": "acme-L1-T1-A1",
    "conversation_id": "AG_1",
    "amount_kes": 5000,
    "phone": "254712345678",
}


def test_a_matching_completed_answer_confirms_the_payment_with_its_receipt():
    assert judge_status_answer(FOUND, **OURS) == Verdict(
        "succeeded", receipt="SX1", result_code="0"
    )


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"originator_conversation_id": "acme-L1-T1-A2"}, "OriginatorConversationID"),
        ({"conversation_id": "AG_forged"}, "ConversationID"),
        ({"conversation_id": None}, "ConversationID"),
        ({"amount": Decimal(50000)}, "Amount"),
        ({"amount": None}, "Amount"),
        ({"receiver": "254799999999 - SOMEONE ELSE"}, "receiver"),
        ({"receipt": None}, "receipt"),
    ],
)
def test_an_answer_that_differs_from_what_we_sent_is_a_mismatch_not_an_outcome(change, fragment):
    verdict = judge_status_answer(replace(FOUND, **change), **OURS)
    assert verdict.kind == "mismatch" and fragment in verdict.reason


def test_without_an_acknowledgement_the_conversation_id_cannot_be_compared_but_the_rest_is():
    assert judge_status_answer(FOUND, **{**OURS, "conversation_id": None}).kind == "succeeded"
    wrong = replace(FOUND, amount=Decimal(1))
    assert judge_status_answer(wrong, **{**OURS, "conversation_id": None}).kind == "mismatch"


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (StatusAnswer(result_code="R000002"), "not_found"),
        (StatusAnswer(result_code="2001", reason_text="initiator invalid"), "query_failed"),
        (StatusAnswer(result_code="21"), "query_failed"),
        (replace(FOUND, transaction_status="Failed", reason_code="17"), "failed"),
        (replace(FOUND, transaction_status="Pending"), "in_flight"),
    ],
)
def test_only_a_definite_not_found_code_counts_as_not_found(answer, kind):
    assert judge_status_answer(answer, **OURS).kind == kind
