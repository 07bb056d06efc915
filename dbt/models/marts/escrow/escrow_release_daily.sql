-- One row per business day (LENDING_ESCROW_TIMEZONE, as recorded by the release run) and
-- currency: escrows released to wholesalers, how much, by the schedule or by hand, and how long
-- the money was held.
with releases as (
    select * from {{ ref('stg_lending__escrow_releases') }}
),

escrows as (
    select * from {{ ref('stg_lending__escrows') }}
)

select
    r.business_date || ':' || r.currency as release_day_key,
    r.business_date,
    r.currency,
    count(*) as releases,
    sum(r.amount_minor)::bigint as released_amount_minor,
    max(r.amount_minor) as largest_release_minor,
    count(distinct e.wholesaler_id) as wholesalers_paid,
    count(distinct e.retailer_id) as retailers,
    count(*) filter (where r.is_scheduled) as scheduled_releases,
    count(*) filter (where not r.is_scheduled) as manual_releases,
    count(*) filter (where r.recovered) as recovered_releases,
    round(avg(extract(epoch from r.released_at - e.created_at))::numeric / 86400, 2)
        as avg_days_held,
    count(*) filter (where r.released_at > e.auto_release_at + interval '1 day')
        as released_over_a_day_late,
    min(r.released_at) as first_released_at,
    max(r.released_at) as last_released_at
from releases as r
join escrows as e on e.escrow_id = r.escrow_id
group by r.business_date, r.currency
