select
    escrow_id,
    business_date,
    amount as amount_minor,
    currency,
    ledger_reference,
    ledger_transaction_id,
    recovered,
    released_by,
    released_by like 'schedule:%' as is_scheduled,
    run_id,
    released_at
from {{ source('lending', 'escrow_releases') }}
