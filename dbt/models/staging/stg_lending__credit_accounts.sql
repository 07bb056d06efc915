select
    retailer_id,
    credit_limit as credit_limit_minor,
    max_order_value as max_order_value_minor,
    max_outstanding_days,
    currency
from {{ source('lending', 'credit_accounts') }}
