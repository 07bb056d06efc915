"""Loan polling and M-Pesa auto-disbursement (workflow 1), without Dagster: `polling` (one
polling cycle over every partner's Fineract), `disbursement` (submit, reconcile, retry, record in
Fineract) and `results` (stored M-Pesa callbacks applied as hints)."""
