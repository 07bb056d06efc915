select
    business_date,
    bucket,
    loans,
    outstanding_minor,
    overdue_minor,
    dpd_sum
from {{ source('lending', 'dpd_daily_summary') }}
