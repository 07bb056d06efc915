"""Aging of an unpaid credit debit: how many days past its due date it is on a business date,
and the bucket that puts it in.

The default buckets are `current` (not yet past due, or due today), `1-30`, `31-60`, `61-90`
and `90+` (more than 90 days). The upper bounds are configurable (`CreditConfig.aging_bounds`):
bounds (15, 45) give `current`, `1-15`, `16-45`, `45+`. `db/credit/aging.py` builds the same
buckets as a SQL CASE from the same bounds; a test compares both on random dates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

CURRENT = "current"
DEFAULT_BOUNDS: tuple[int, ...] = (30, 60, 90)


def check_bounds(bounds: Sequence[int]) -> tuple[int, ...]:
    """Strictly increasing positive day counts; raises ValueError naming the value."""
    values = tuple(bounds)
    if not values:
        raise ValueError("aging bounds are empty, expected e.g. (30, 60, 90)")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"aging bound {value!r} is not a positive whole number of days")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"aging bounds {list(values)} are not strictly increasing")
    return values


def bucket_labels(bounds: Sequence[int] = DEFAULT_BOUNDS) -> tuple[str, ...]:
    """The bucket names in order: ('current', '1-30', '31-60', '61-90', '90+')."""
    values = check_bounds(bounds)
    labels = [CURRENT]
    lower = 1
    for upper in values:
        labels.append(f"{lower}-{upper}")
        lower = upper + 1
    labels.append(f"{values[-1]}+")
    return tuple(labels)


def days_past_due(due_date: date, business_date: date) -> int:
    """Whole days after the due date (0 or negative: not past due)."""
    return (business_date - due_date).days


def aging_bucket(
    due_date: date, business_date: date, bounds: Sequence[int] = DEFAULT_BOUNDS
) -> str:
    """The bucket of a debit due on `due_date`, seen on `business_date`."""
    values = check_bounds(bounds)
    labels = bucket_labels(values)
    days = days_past_due(due_date, business_date)
    if days <= 0:
        return CURRENT
    for index, upper in enumerate(values):
        if days <= upper:
            return labels[index + 1]
    return labels[-1]
