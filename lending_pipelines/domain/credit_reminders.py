"""Payment-reminder eligibility for one credit debit on one business day (credit timezone).

A reminder is due when the debit is unpaid (OPEN or PARTIAL) and due within `window_days` of
the business date or already overdue, and no reminder for it was sent on that local day or later:
at most one per transaction per day, and re-running a past day sends nothing new.
`db/credit/reminders.py` selects the same debits in SQL.
"""

from __future__ import annotations

from datetime import date

UNPAID = ("OPEN", "PARTIAL")


def reminder_due(
    *,
    status: str,
    due_date: date,
    business_date: date,
    window_days: int,
    last_reminder_on: date | None,
) -> bool:
    """`last_reminder_on`: the local date of reminder_sent_at (None: never reminded)."""
    if window_days < 0:
        raise ValueError(f"reminder window_days is {window_days}, expected >= 0")
    if status not in UNPAID:
        return False
    if (due_date - business_date).days > window_days:
        return False
    return last_reminder_on is None or last_reminder_on < business_date
