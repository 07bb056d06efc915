"""Retailer credit operations in the database (workflow 2), by concern:

* `tables`: the platform tables and the workflow's own;
* `exposure`: outstanding, aging and the book figures the dashboard and guardrails read;
* `guardrails`: pausing retailers set-based, audited and notified in one transaction;
* `reminders`, `recovery`: reminder, expiry, follow-up and reversal statements;
* `insights`: per-retailer statistics for a period;
* `manual`: the Launchpad operations (payments, adjustments, pause/unpause, guardrail changes).
"""

from .tables import (
    credit_accounts,
    credit_transactions,
    orders,
    pending_orders,
    retailer_insights,
    retailers,
)

__all__ = [
    "credit_accounts",
    "credit_transactions",
    "orders",
    "pending_orders",
    "retailer_insights",
    "retailers",
]
