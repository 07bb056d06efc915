select
    id as batch_id,
    payout_date,
    batch_hash,
    status,
    currency,
    token_rate,
    item_count as stored_item_count,
    total_amount_minor as stored_total_amount_minor,
    paid_amount_minor as stored_paid_amount_minor,
    created_at,
    completed_at
from {{ source('lending', 'payout_batches') }}
