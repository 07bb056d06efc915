"""The credit rules (domain/credit_*.py): tables of cases and properties."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain.credit_aging import aging_bucket, bucket_labels, check_bounds
from lending_pipelines.domain.credit_guardrails import (
    OVER_LIMIT,
    OVERDUE,
    guardrail_decision,
)
from lending_pipelines.domain.credit_money import format_amount
from lending_pipelines.domain.credit_orders import CreditAccount, validate_order
from lending_pipelines.domain.credit_reminders import reminder_due

DAY = date(2026, 3, 31)


# --- aging ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days_past_due", "bucket"),
    [
        (-10, "current"),
        (0, "current"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "90+"),
        (400, "90+"),
    ],
)
def test_an_unpaid_debit_falls_in_the_bucket_of_its_days_past_due(days_past_due, bucket):
    assert aging_bucket(DAY - timedelta(days=days_past_due), DAY) == bucket


def test_aging_ranges_are_configurable():
    assert bucket_labels((15, 45)) == ("current", "1-15", "16-45", "45+")
    assert aging_bucket(DAY - timedelta(days=16), DAY, (15, 45)) == "16-45"
    assert aging_bucket(DAY - timedelta(days=46), DAY, (15, 45)) == "45+"


@pytest.mark.parametrize("bounds", [(), (0, 30), (30, 30), (60, 30), (1.5,)])
def test_bad_aging_bounds_are_refused_naming_the_value(bounds):
    with pytest.raises(ValueError, match="aging bound"):
        check_bounds(bounds)


@given(st.integers(-1000, 1000), st.lists(st.integers(1, 400), min_size=1, max_size=5, unique=True))
def test_every_debit_has_exactly_one_bucket_and_later_days_never_age_less(days, raw_bounds):
    bounds = tuple(sorted(raw_bounds))
    labels = bucket_labels(bounds)
    due = DAY - timedelta(days=days)
    bucket = aging_bucket(due, DAY, bounds)
    later = aging_bucket(due, DAY + timedelta(days=1), bounds)
    assert bucket in labels
    assert labels.index(later) >= labels.index(bucket)


# --- order validation ----------------------------------------------------------------------------


def account(status="ACTIVE", limit=100_000, max_order=40_000, outstanding=70_000):
    return CreditAccount("r-1", status, limit, max_order, outstanding, "INR")


@pytest.mark.parametrize(
    ("acct", "mode", "amount", "allowed", "rule", "numbers"),
    [
        (account(), "CREDIT", 30_000, True, None, "INR 0.00 credit left"),
        (account(), "CREDIT", 30_001, False, "above_available_credit", "INR 300.00"),
        (account(), "CREDIT", 40_001, False, "above_max_order_value", "by INR 0.01"),
        (account(status="PAUSED"), "CREDIT", 100, False, "credit_paused", "PAUSED"),
        (account(status="BLOCKED"), "CREDIT", 100, False, "credit_blocked", "BLOCKED"),
        (account(status="PAUSED"), "COD", 900_000, True, None, "COD"),
        (account(status="BLOCKED"), "COD", 900_000, True, None, "COD"),
        (account(), "CREDIT", 0, False, "invalid_amount", "0"),
        (account(), "CREDIT", -5, False, "invalid_amount", "-5"),
        (account(), "CHEQUE", 100, False, "invalid_payment_mode", "'CHEQUE'"),
        (account(outstanding=120_000), "CREDIT", 1, False, "above_available_credit", "INR 0.00"),
    ],
)
def test_order_validation_names_the_rule_and_the_numbers(
    acct, mode, amount, allowed, rule, numbers
):
    decision = validate_order(acct, payment_mode=mode, amount=amount, currency="INR")
    assert (decision.allowed, decision.rule) == (allowed, rule)
    assert numbers in decision.message


def test_a_credit_order_in_another_currency_is_refused():
    decision = validate_order(account(), payment_mode="CREDIT", amount=100, currency="KES")
    assert decision.rule == "currency_mismatch" and "'KES'" in decision.message


@given(
    st.sampled_from(["ACTIVE", "PAUSED", "BLOCKED"]),
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.integers(0, 2 * 10**9),
    st.integers(1, 10**9),
)
def test_an_allowed_credit_order_never_exceeds_the_limits(
    status, limit, max_order, outstanding, amount
):
    acct = CreditAccount("r", status, limit, max_order, outstanding, "INR")
    decision = validate_order(acct, payment_mode="CREDIT", amount=amount, currency="INR")
    if decision.allowed:
        assert status == "ACTIVE"
        assert amount <= max_order and outstanding + amount <= limit
    assert validate_order(acct, payment_mode="COD", amount=amount, currency="INR").allowed


# --- guardrails ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outstanding", "limit", "age", "max_days", "breaches", "text"),
    [
        (50_000, 100_000, 30, 30, (), None),
        (50_000, 100_000, 31, 30, (OVERDUE,), "31 days old, 1 over max_outstanding_days 30"),
        (
            100_001,
            100_000,
            5,
            30,
            (OVER_LIMIT,),
            "exceeds the credit limit INR 1,000.00 by INR 0.01",
        ),
        (120_000, 100_000, 45, 30, (OVERDUE, OVER_LIMIT), "15 over"),
        (100_000, 100_000, 0, 30, (), None),
        (0, 0, None, 30, (), None),
    ],
)
def test_guardrails_pause_on_age_or_limit_and_say_by_how_much(
    outstanding, limit, age, max_days, breaches, text
):
    oldest = None if age is None else DAY - timedelta(days=age)
    decision = guardrail_decision(
        outstanding=outstanding,
        credit_limit=limit,
        currency="INR",
        oldest_unpaid_debit_on=oldest,
        business_date=DAY,
        max_outstanding_days=max_days,
    )
    assert decision.breaches == breaches
    assert decision.pause == bool(breaches)
    if text is None:
        assert decision.reason is None
    else:
        assert text in decision.reason


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 500), st.integers(0, 365))
def test_guardrails_pause_exactly_when_a_limit_is_broken(outstanding, limit, age, max_days):
    decision = guardrail_decision(
        outstanding=outstanding,
        credit_limit=limit,
        currency="INR",
        oldest_unpaid_debit_on=DAY - timedelta(days=age),
        business_date=DAY,
        max_outstanding_days=max_days,
    )
    assert decision.pause == (outstanding > limit or (outstanding > 0 and age > max_days))


# --- reminders -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "due_in", "last", "due"),
    [
        ("OPEN", 3, None, True),  # due within the 3-day window
        ("OPEN", 4, None, False),  # not yet
        ("PARTIAL", -20, None, True),  # overdue
        ("OPEN", 0, DAY, False),  # already reminded today
        ("OPEN", 0, DAY - timedelta(days=1), True),  # reminded yesterday
        ("OPEN", 0, DAY + timedelta(days=1), False),  # re-running a past day
        ("CLEARED", -5, None, False),
        ("REVERSED", -5, None, False),
    ],
)
def test_a_reminder_is_due_once_a_day_for_debits_due_soon_or_overdue(status, due_in, last, due):
    assert (
        reminder_due(
            status=status,
            due_date=DAY + timedelta(days=due_in),
            business_date=DAY,
            window_days=3,
            last_reminder_on=last,
        )
        is due
    )


@given(st.integers(-100, 100), st.integers(0, 30))
def test_a_transaction_reminded_today_is_never_due_again_today(due_in, window):
    assert not reminder_due(
        status="OPEN",
        due_date=DAY + timedelta(days=due_in),
        business_date=DAY,
        window_days=window,
        last_reminder_on=DAY,
    )


def test_amounts_read_with_thousands_and_minor_units():
    assert format_amount(120_050, "INR") == "INR 1,200.50"
    assert format_amount(5_000, "RWF") == "RWF 5,000"
    assert format_amount(-1, "INR") == "INR -0.01"
