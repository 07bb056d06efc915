select
    retailer_id,
    period_start,
    period_end,
    orders_count,
    spend as spend_minor,
    average_order_value as average_order_value_minor,
    repayments_count,
    on_time_rate,
    utilisation,
    outstanding as outstanding_minor,
    credit_limit as credit_limit_minor,
    currency,
    generated_at
from {{ source('lending', 'retailer_insights') }}
