-- Borrower phone numbers are left out on purpose: analytics does not need personal data.
select
    id as disbursement_request_id,
    partner_id,
    fineract_loan_id,
    tranche,
    loan_tracking_id,
    status,
    amount_minor,
    currency,
    charge_minor,
    attempts,
    retryable,
    result_code,
    failure_reason,
    status_queries,
    submitted_at,
    resolved_at,
    fineract_recorded_at,
    created_at
from {{ source('lending', 'disbursement_requests') }}
