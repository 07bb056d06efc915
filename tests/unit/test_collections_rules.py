"""Collections rules: DPD as of a date, buckets, oldest-first allocation."""

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain.collections import (
    Allocation,
    Installment,
    OpenInstallment,
    allocate,
    bucket_for,
    dpd_as_of,
)

D = date(2026, 11, 30)


@pytest.mark.parametrize(
    ("dpd", "bucket"),
    [
        (0, "current"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "90+"),
        (4000, "90+"),
    ],
)
def test_bucket_boundaries(dpd, bucket):
    assert bucket_for(dpd) == bucket


def test_bucket_refuses_negative_and_non_int_dpd():
    with pytest.raises(ValueError, match="dpd is -1"):
        bucket_for(-1)
    with pytest.raises(TypeError, match="dpd is 1.5"):
        bucket_for(1.5)


def _book(*due_days_ago: int, amount: int = 1000) -> list[Installment]:
    return [
        Installment(n, n, D - timedelta(days=ago), amount) for n, ago in enumerate(due_days_ago, 1)
    ]


@pytest.mark.parametrize(
    ("case", "installments", "allocations", "expected"),
    [
        ("nothing due yet", _book(-5, -35), [], 0),
        ("due today, unpaid, is not past due", _book(0), [], 0),
        ("paid on the due date", _book(10), [Allocation(1, 1000, D - timedelta(days=10))], 0),
        (
            "partially paid counts as unpaid",
            _book(10),
            [Allocation(1, 999, D - timedelta(days=10))],
            10,
        ),
        ("oldest unpaid wins", _book(40, 10), [], 40),
        (
            "paid late, then current again",
            _book(40, 10),
            [
                Allocation(1, 1000, D - timedelta(days=5)),
                Allocation(2, 1000, D - timedelta(days=1)),
            ],
            0,
        ),
        (
            "a payment dated after the day does not count",
            _book(10),
            [Allocation(1, 1000, D + timedelta(days=1))],
            10,
        ),
        (
            "second installment unpaid after the first was paid",
            _book(40, 10),
            [Allocation(1, 1000, D - timedelta(days=30))],
            10,
        ),
    ],
)
def test_dpd_as_of_a_business_date(case, installments, allocations, expected):
    assert dpd_as_of(installments, allocations, D) == expected, case


def test_allocation_takes_oldest_first_and_records_the_overpayment():
    opened = [
        OpenInstallment(2, 2, D, 500),
        OpenInstallment(1, 1, D - timedelta(days=30), 300),
        OpenInstallment(3, 3, D + timedelta(days=30), 1000),
    ]
    assert allocate(opened, 700).allocations == ((1, 300), (2, 400))
    everything = allocate(opened, 2000)
    assert everything.allocations == ((1, 300), (2, 500), (3, 1000))
    assert everything.overpaid_minor == 200


def test_allocation_of_a_paid_off_loan_is_all_overpayment():
    result = allocate([], 12345)
    assert result.allocations == () and result.overpaid_minor == 12345


@given(
    outstanding=st.lists(st.integers(min_value=0, max_value=10**9), max_size=15),
    amount=st.integers(min_value=1, max_value=10**10),
)
def test_allocation_never_loses_or_invents_a_paisa(outstanding, amount):
    opened = [
        OpenInstallment(i, i, D + timedelta(days=30 * i), o) for i, o in enumerate(outstanding)
    ]
    result = allocate(opened, amount)
    assert sum(a for _, a in result.allocations) + result.overpaid_minor == amount
    taken = dict(result.allocations)
    for item in opened:
        assert 0 <= taken.get(item.id, 0) <= item.outstanding_minor
    # oldest first: an installment gets money only when every older one is full
    ids = [i for i, _ in result.allocations]
    assert ids == sorted(ids)
    for item in opened[: max(ids, default=-1)]:
        assert taken.get(item.id, 0) == item.outstanding_minor
    assert result.overpaid_minor == max(0, amount - sum(outstanding))


@given(
    dues=st.lists(st.integers(min_value=-60, max_value=400), min_size=1, max_size=12),
    paid_mask=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_dpd_is_days_since_the_oldest_unpaid_due_date_and_matches_its_bucket(dues, paid_mask):
    installments = _book(*dues)
    allocations = [
        Allocation(i.id, i.amount_due_minor, i.due_date)
        for i, paid in zip(installments, paid_mask, strict=False)
        if paid
    ]
    dpd = dpd_as_of(installments, allocations, D)
    unpaid = [ago for ago, paid in zip(dues, paid_mask, strict=False) if not paid and ago >= 0]
    assert dpd == (max(unpaid) if unpaid else 0)
    assert bucket_for(dpd) in ("current", "1-30", "31-60", "61-90", "90+")
    # a later business date never lowers DPD without a payment
    assert dpd_as_of(installments, allocations, D + timedelta(days=1)) >= dpd
