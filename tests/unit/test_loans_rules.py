"""Disbursement rules: attempt ids, result-code classification, backoff, amounts, success rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain.backoff import backoff_delay
from lending_pipelines.domain.disbursement import (
    DisbursementRuleError,
    b2c_amount,
    classify_result,
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
