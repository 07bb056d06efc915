"""The guardrail decision: should a retailer's credit be paused, and why.

Pause when the oldest unpaid debit has been outstanding longer than the account's
`max_outstanding_days` (days from the debit's creation date to the business date, both in the
credit timezone), or when the outstanding amount exceeds the credit limit. The reason states
each breach and by how much. `db/credit/guardrails.py` finds the same retailers set-based (a
test runs both on the same book); the reason text of every pause comes from this function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .credit_money import format_amount

OVERDUE = "outstanding_days"
OVER_LIMIT = "over_limit"


@dataclass(frozen=True)
class GuardrailDecision:
    pause: bool
    breaches: tuple[str, ...]  # OVERDUE and/or OVER_LIMIT, in that order
    reason: str | None
    outstanding_days: int | None  # age in days of the oldest unpaid debit


def guardrail_decision(
    *,
    outstanding: int,
    credit_limit: int,
    currency: str,
    oldest_unpaid_debit_on: date | None,
    business_date: date,
    max_outstanding_days: int,
) -> GuardrailDecision:
    """`oldest_unpaid_debit_on`: the local creation date of the oldest debit not fully paid."""
    breaches: list[str] = []
    parts: list[str] = []
    days = None
    if oldest_unpaid_debit_on is not None and outstanding > 0:
        days = (business_date - oldest_unpaid_debit_on).days
        if days > max_outstanding_days:
            breaches.append(OVERDUE)
            parts.append(
                f"oldest unpaid debit is {days} days old, {days - max_outstanding_days} over "
                f"max_outstanding_days {max_outstanding_days}"
            )
    if outstanding > credit_limit:
        breaches.append(OVER_LIMIT)
        parts.append(
            f"outstanding {format_amount(outstanding, currency)} exceeds the credit limit "
            f"{format_amount(credit_limit, currency)} by "
            f"{format_amount(outstanding - credit_limit, currency)}"
        )
    return GuardrailDecision(bool(breaches), tuple(breaches), "; ".join(parts) or None, days)
