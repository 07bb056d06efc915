"""Creator payouts in the database (workflow 3), by concern:

* `tables`: the tables and their statuses;
* `ledger`: creators, token ledger entries, withdrawal requests;
* `eligibility`: evaluating a payout date in one statement;
* `batches`: freezing it into a batch of items in chunks, totals and invariants;
* `items`: queries over a batch's items and chunks;
* `claims`: claiming a creator's tokens across payout dates;
* `work`: claiming chunks and items, recording what Stripe answered;
* `events`: applying Stripe events (reversals, account updates).

The names of the first five are re-exported here, so callers write `payouts.get_batch(...)`.
"""

from .batches import (
    BatchCreation,
    BatchInvariants,
    BatchTotals,
    batch_invariants,
    create_batch,
    get_batch,
    latest_batch,
    refresh_batch_totals,
)
from .eligibility import (
    EligibilitySummary,
    Outcome,
    account_refresh_candidates,
    apply_account_states,
    eligibility_rows,
    evaluate_eligibility,
    stored_evaluation,
)
from .items import (
    batches_of_items,
    failed_items,
    ledger_transfer_mismatches,
    open_chunk_count,
)
from .ledger import (
    add_ledger_entries,
    add_withdrawal_requests,
    upsert_creators,
)
from .tables import (
    BATCH_STATUSES,
    CHUNK_STATUSES,
    ITEM_STATUSES,
    KYC_STATUSES,
    OPEN_ITEM_STATUSES,
    REQUEST_STATUSES,
    VIEW_NAMES,
    PayoutStateError,
    creators,
    ledger_entries,
    payout_batches,
    payout_chunks,
    payout_eligibility,
    payout_evaluations,
    payout_items,
    withdrawal_requests,
)

__all__ = [
    "BATCH_STATUSES",
    "BatchCreation",
    "BatchInvariants",
    "BatchTotals",
    "CHUNK_STATUSES",
    "EligibilitySummary",
    "ITEM_STATUSES",
    "KYC_STATUSES",
    "OPEN_ITEM_STATUSES",
    "Outcome",
    "PayoutStateError",
    "REQUEST_STATUSES",
    "VIEW_NAMES",
    "account_refresh_candidates",
    "add_ledger_entries",
    "add_withdrawal_requests",
    "apply_account_states",
    "batch_invariants",
    "batches_of_items",
    "create_batch",
    "creators",
    "eligibility_rows",
    "evaluate_eligibility",
    "failed_items",
    "get_batch",
    "latest_batch",
    "ledger_entries",
    "ledger_transfer_mismatches",
    "open_chunk_count",
    "payout_batches",
    "payout_chunks",
    "payout_eligibility",
    "payout_evaluations",
    "payout_items",
    "refresh_batch_totals",
    "stored_evaluation",
    "upsert_creators",
    "withdrawal_requests",
]
