"""Loan polling and M-Pesa auto-disbursement in the database (workflow 1), by concern:

* `tables`: the tables (partners' secrets stored encrypted);
* `partners`: saving partners and reading them back decrypted (`Partner`, whose repr hides
  secrets), auto-disbursal per product;
* `polling`: poll attempts and the tracked-loan upsert, one statement for all partners each;
* `requests`: disbursement requests from creation to their Fineract record;
* `checks`: the queries behind the loans asset checks.

Claiming, attempts and status queries live in `db/disbursement_attempts.py`, results in
`db/disbursement_results.py`, Fineract listing records in `db/fineract_records.py`. The public
names are re-exported here, so callers write `loans_db.save_partner(...)`.
"""

from .checks import (
    disbursement_outcomes,
    last_new_loan_at,
    partners_failing_since,
    poll_counts,
    stuck_disbursements,
)
from .partners import (
    MpesaCredentials,
    Partner,
    PartnerSetup,
    partners_by_id,
    pollable_partners,
    save_partner,
    set_auto_disbursal,
)
from .polling import PollOutcome, finish_poll_attempts, start_poll_attempts, upsert_tracked_loans
from .requests import (
    _OPEN_COLUMNS,
    OpenDisbursement,
    create_disbursement_requests,
    defer,
    give_up,
    mark_failed,
    mark_fineract_error,
    mark_recorded_in_fineract,
    rearm,
    refund_final_failures,
    retryable_failures,
    succeeded_unrecorded,
)
from .tables import (
    FILTER_MODES,
    NOW,
    T,
    auto_disbursal_configs,
    disbursement_attempts,
    disbursement_requests,
    disbursement_status_queries,
    loan_tracking,
    partners,
    poll_attempts,
)

__all__ = [
    "FILTER_MODES",
    "NOW",
    "T",
    "_OPEN_COLUMNS",
    "MpesaCredentials",
    "OpenDisbursement",
    "Partner",
    "PartnerSetup",
    "PollOutcome",
    "auto_disbursal_configs",
    "create_disbursement_requests",
    "defer",
    "disbursement_attempts",
    "disbursement_outcomes",
    "disbursement_requests",
    "disbursement_status_queries",
    "finish_poll_attempts",
    "give_up",
    "last_new_loan_at",
    "loan_tracking",
    "mark_failed",
    "mark_fineract_error",
    "mark_recorded_in_fineract",
    "partners",
    "partners_by_id",
    "partners_failing_since",
    "poll_attempts",
    "poll_counts",
    "pollable_partners",
    "rearm",
    "refund_final_failures",
    "retryable_failures",
    "save_partner",
    "set_auto_disbursal",
    "start_poll_attempts",
    "stuck_disbursements",
    "succeeded_unrecorded",
    "upsert_tracked_loans",
]
