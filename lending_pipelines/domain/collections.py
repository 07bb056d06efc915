"""Collections rules (workflow 5): days past due, buckets, and allocating a payment.

DPD as of a business date is the number of days since the due date of the oldest installment
still unpaid at the end of that date, counting only payments dated on or before it; 0 when none
is overdue. An installment due on the business date itself and unpaid gives 0 (it is due, not
yet past due). The SQL in db/collections/dpd.py computes the same thing for the whole book in
one statement; `dpd_as_of` is its reference, and the tests hold them to each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

# (upper DPD bound inclusive, bucket), in order; above the last bound: "90+".
BUCKET_BOUNDS: tuple[tuple[int, str], ...] = (
    (0, "current"),
    (30, "1-30"),
    (60, "31-60"),
    (90, "61-90"),
)
TOP_BUCKET = "90+"
BUCKETS: tuple[str, ...] = (*(name for _, name in BUCKET_BOUNDS), TOP_BUCKET)
ESCALATION_DPD = 90
# Statuses whose DPD is computed every business day; closed and written-off loans keep their last.
TRACKED_STATUSES = ("ACTIVE", "LEGAL")
# Statuses that accept a payment.
PAYABLE_STATUSES = ("ACTIVE", "LEGAL")


def bucket_for(dpd: int) -> str:
    """current (0), 1-30, 31-60, 61-90, 90+ (91 and over)."""
    if isinstance(dpd, bool) or not isinstance(dpd, int):
        raise TypeError(f"dpd is {dpd!r}, expected an int")
    if dpd < 0:
        raise ValueError(f"dpd is {dpd}, expected >= 0")
    for bound, name in BUCKET_BOUNDS:
        if dpd <= bound:
            return name
    return TOP_BUCKET


@dataclass(frozen=True)
class Installment:
    id: int
    number: int
    due_date: date
    amount_due_minor: int


@dataclass(frozen=True)
class Allocation:
    installment_id: int
    amount_minor: int
    paid_on: date


def dpd_as_of(
    installments: Sequence[Installment], allocations: Iterable[Allocation], business_date: date
) -> int:
    """Days past due at the end of `business_date` (allocations dated later do not count)."""
    paid: dict[int, int] = {}
    for allocation in allocations:
        if allocation.paid_on <= business_date:
            paid[allocation.installment_id] = (
                paid.get(allocation.installment_id, 0) + allocation.amount_minor
            )
    unpaid_due = [
        i.due_date
        for i in installments
        if i.due_date <= business_date and paid.get(i.id, 0) < i.amount_due_minor
    ]
    return (business_date - min(unpaid_due)).days if unpaid_due else 0


@dataclass(frozen=True)
class OpenInstallment:
    id: int
    number: int
    due_date: date
    outstanding_minor: int


@dataclass(frozen=True)
class AllocationResult:
    allocations: tuple[tuple[int, int], ...]  # (installment id, amount in paise)
    overpaid_minor: int


def allocate(open_installments: Sequence[OpenInstallment], amount_minor: int) -> AllocationResult:
    """Spread a payment over the installments, oldest due date first (then by number); what no
    installment can take is the overpayment, returned so it is recorded, never lost."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValueError(f"amount_minor is {amount_minor!r}, expected a positive int")
    left = amount_minor
    taken: list[tuple[int, int]] = []
    for item in sorted(open_installments, key=lambda i: (i.due_date, i.number, i.id)):
        if left == 0:
            break
        if item.outstanding_minor <= 0:
            continue
        part = min(left, item.outstanding_minor)
        taken.append((item.id, part))
        left -= part
    return AllocationResult(tuple(taken), left)
