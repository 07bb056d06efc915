-- One row per computed business day and bucket: loans, outstanding and overdue (paise, INR),
-- share of the book, and the average DPD of the bucket.
select
    business_date || ':' || bucket as bucket_day_key,
    business_date,
    bucket,
    loans,
    outstanding_minor,
    overdue_minor,
    round(loans::numeric / nullif(sum(loans) over (partition by business_date), 0), 4)
        as share_of_loans,
    round(outstanding_minor::numeric
          / nullif(sum(outstanding_minor) over (partition by business_date), 0), 4)
        as share_of_outstanding,
    round(dpd_sum::numeric / nullif(loans, 0), 2) as average_dpd
from {{ ref('stg_lending__dpd_daily_summary') }}
