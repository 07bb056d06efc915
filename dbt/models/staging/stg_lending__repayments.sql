select
    id as repayment_id,
    retailer_id,
    business_date,
    currency,
    amount as amount_minor,
    debt_before as debt_before_minor,
    wallet_balance_before as wallet_balance_before_minor,
    limited_by,
    ledger_reference,
    ledger_transaction_id,
    status,
    recovered,
    error,
    created_at,
    applied_at
from {{ source('lending', 'repayments') }}
