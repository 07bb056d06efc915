"""Loan collections (workflow 5), without Dagster: the DPD run, payment files, escalation,
scores, the guard's refusal report and the Launchpad operations."""
