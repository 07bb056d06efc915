select
    id as escrow_id,
    order_id,
    retailer_id,
    wholesaler_id,
    amount as amount_minor,
    currency,
    status,
    created_at,
    auto_release_at,
    released_at
from {{ source('lending', 'escrows') }}
