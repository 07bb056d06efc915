{{ config(meta={'dagster': {'ref': {'name': 'credit_outstanding_by_bucket'}}}) }}
-- The risk dashboard's aging buckets add up to the outstanding credit, currency by currency:
-- any row returned is a currency whose bucket total differs from what is owed.
with buckets as (
    select currency, sum(outstanding_minor) as amount
    from {{ ref('credit_outstanding_by_bucket') }}
    group by currency
),

owed as (
    select currency, sum(owed_minor) as amount
    from {{ ref('stg_lending__credit_transactions') }}
    where owed_minor > 0
    group by currency
)

select
    coalesce(b.currency, o.currency) as currency,
    b.amount as bucket_total_minor,
    o.amount as outstanding_minor
from buckets as b
full outer join owed as o on o.currency = b.currency
where b.amount is distinct from o.amount
