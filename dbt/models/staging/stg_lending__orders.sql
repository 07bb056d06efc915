select
    id as order_id,
    retailer_id,
    payment_mode,
    status,
    amount as amount_minor,
    currency,
    created_at,
    failed_at,
    failure_reason
from {{ source('lending', 'orders') }}
