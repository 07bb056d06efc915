select
    business_date,
    loans
from {{ source('lending', 'dpd_days') }}
