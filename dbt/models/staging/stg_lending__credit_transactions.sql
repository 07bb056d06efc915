select
    id as credit_transaction_id,
    retailer_id,
    order_id,
    type as transaction_type,
    amount as amount_minor,
    currency,
    due_date,
    status,
    cleared_amount as cleared_amount_minor,
    cleared_at,
    reminder_sent_at,
    reminder_count,
    applies_to,
    reversal_of,
    created_at,
    (type = 'DEBIT' or (type = 'ADJUSTMENT' and amount > 0)) as is_charge,
    case
        when status in ('OPEN', 'PARTIAL') and amount > 0 and type in ('DEBIT', 'ADJUSTMENT')
            then amount - cleared_amount
        else 0
    end as owed_minor
from {{ source('lending', 'credit_transactions') }}
