select
    loan_id,
    business_date,
    from_bucket,
    bucket as to_bucket,
    dpd
from {{ source('lending', 'dpd_bucket_changes') }}
