-- One row per retailer, bucket and currency: unpaid credit by aging bucket (days past the due
-- date on today's business day in the credit timezone). Buckets as CreditConfig's default.
with business_day as (
    select (now() at time zone '{{ var("credit_timezone") }}')::date as business_date
),

owed as (
    select
        t.retailer_id,
        t.currency,
        t.owed_minor,
        d.business_date,
        d.business_date - t.due_date as days_past_due
    from {{ ref('stg_lending__credit_transactions') }} as t
    cross join business_day as d
    where t.owed_minor > 0
)

select
    retailer_id || ':' || bucket || ':' || currency as retailer_bucket_key,
    retailer_id,
    bucket,
    bucket_order,
    currency,
    business_date,
    count(*) as debits,
    sum(owed_minor)::bigint as outstanding_minor,
    max(days_past_due) as max_days_past_due
from (
    select
        *,
        case
            when days_past_due <= 0 then 'current'
            when days_past_due <= 30 then '1-30'
            when days_past_due <= 60 then '31-60'
            when days_past_due <= 90 then '61-90'
            else '90+'
        end as bucket,
        case
            when days_past_due <= 0 then 0
            when days_past_due <= 30 then 1
            when days_past_due <= 60 then 2
            when days_past_due <= 90 then 3
            else 4
        end as bucket_order
    from owed
) as aged
group by retailer_id, bucket, bucket_order, currency, business_date
