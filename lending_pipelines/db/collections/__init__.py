"""Loan collections in the database (workflow 5), by concern: `tables`, `dpd` (the daily
computation and its history), `payments` (posting and quarantine), `guard` (the financial
guard's writer marker and refusal counters), `escalation`, `scores`, `operations` (Launchpad)."""

from . import tables  # noqa: F401  (registers the tables in the shared metadata)
