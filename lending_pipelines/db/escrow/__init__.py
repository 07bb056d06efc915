"""Escrow release and wallet auto-deduct in the database (workflow 4), by concern:

* `tables`: the tables, statuses and deterministic ledger references;
* `accounts`: which Blnk balance belongs to whom;
* `releases`: escrows, release candidates, recording releases, disputes;
* `deductions`: auto-deduct candidates and the deductions computed in one statement;
* `repayments`: repayment intents and their outcomes (outbox discipline);
* `settle`: the row locks and guards that keep concurrent runs from moving money twice.

Their public names are re-exported here, so callers write `escrow.release_candidates(...)`.
"""

from .accounts import (
    upsert_blnk_accounts,
)
from .deductions import (
    COMPUTE_DEDUCTIONS_SQL,
    ComputedDeduction,
    DeductCandidate,
    auto_deduct_candidates,
    compute_deductions,
)
from .releases import (
    ReleaseCandidate,
    create_escrows,
    mark_escrow_disputed,
    record_release,
    release_candidates,
    release_integrity_problems,
    releases_on,
)
from .repayments import (
    REPAYMENT_FIELDS,
    Repayment,
    apply_repayment,
    create_repayment_intents,
    fail_repayment,
    repayments_on,
)
from .settle import (
    ALREADY_RECORDED,
    CREATE_GUARDED_INTENTS_SQL,
    DEBT_CHANGED,
    PENDING_REPAYMENT,
    create_guarded_intents,
    lock_held_escrow,
    lock_pending_repayment,
    pending_repayments,
    record_ledger_mismatch,
)
from .tables import (
    ACCOUNT_TYPES,
    ESCROW_STATUSES,
    PLATFORM,
    REPAYMENT_STATUSES,
    EscrowStateError,
    auto_deduct_reference,
    auto_deduct_settings,
    blnk_accounts,
    escrow_release_reference,
    escrow_releases,
    escrows,
    repayments,
    retailer_debts,
)

__all__ = [
    "ACCOUNT_TYPES",
    "ALREADY_RECORDED",
    "COMPUTE_DEDUCTIONS_SQL",
    "CREATE_GUARDED_INTENTS_SQL",
    "ComputedDeduction",
    "DEBT_CHANGED",
    "DeductCandidate",
    "ESCROW_STATUSES",
    "EscrowStateError",
    "PENDING_REPAYMENT",
    "PLATFORM",
    "REPAYMENT_FIELDS",
    "REPAYMENT_STATUSES",
    "ReleaseCandidate",
    "Repayment",
    "apply_repayment",
    "auto_deduct_candidates",
    "auto_deduct_reference",
    "auto_deduct_settings",
    "blnk_accounts",
    "compute_deductions",
    "create_escrows",
    "create_guarded_intents",
    "create_repayment_intents",
    "escrow_release_reference",
    "escrow_releases",
    "escrows",
    "fail_repayment",
    "lock_held_escrow",
    "lock_pending_repayment",
    "mark_escrow_disputed",
    "pending_repayments",
    "record_ledger_mismatch",
    "record_release",
    "release_candidates",
    "release_integrity_problems",
    "releases_on",
    "repayments",
    "repayments_on",
    "retailer_debts",
    "upsert_blnk_accounts",
]
