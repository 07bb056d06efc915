-- Retailers with credit 31+ days past due or over their limit, worst first: who to call today.
with per_retailer as (
    select
        retailer_id,
        currency,
        sum(outstanding_minor)::bigint as outstanding_minor,
        sum(outstanding_minor) filter (where bucket_order >= 2)::bigint as past_30_days_minor,
        max(bucket_order) as worst_bucket_order,
        max(max_days_past_due) as max_days_past_due
    from {{ ref('credit_outstanding_by_retailer') }}
    group by retailer_id, currency
)

select
    p.retailer_id,
    r.retailer_name,
    r.credit_status,
    p.currency,
    p.outstanding_minor,
    coalesce(p.past_30_days_minor, 0) as past_30_days_minor,
    a.credit_limit_minor,
    p.outstanding_minor - a.credit_limit_minor as over_limit_minor,
    p.max_days_past_due,
    a.max_outstanding_days
from per_retailer as p
inner join {{ ref('stg_lending__retailers') }} as r on r.retailer_id = p.retailer_id
inner join {{ ref('stg_lending__credit_accounts') }} as a on a.retailer_id = p.retailer_id
where p.worst_bucket_order >= 2 or p.outstanding_minor > a.credit_limit_minor
