-- System-wide unpaid credit per aging bucket and currency (the risk dashboard's headline).
select
    bucket || ':' || currency as bucket_key,
    bucket,
    bucket_order,
    currency,
    business_date,
    count(distinct retailer_id) as retailers,
    sum(debits) as debits,
    sum(outstanding_minor)::bigint as outstanding_minor
from {{ ref('credit_outstanding_by_retailer') }}
group by bucket, bucket_order, currency, business_date
