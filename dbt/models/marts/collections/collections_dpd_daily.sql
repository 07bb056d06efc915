-- One row per computed business day: the book's DPD averages (every tracked loan, and the
-- delinquent ones only), delinquency rates by count and by outstanding.
select
    business_date,
    sum(loans)::bigint as loans,
    sum(loans) filter (where bucket <> 'current')::bigint as delinquent_loans,
    sum(outstanding_minor)::bigint as outstanding_minor,
    sum(overdue_minor)::bigint as overdue_minor,
    round(sum(dpd_sum)::numeric / nullif(sum(loans), 0), 2) as average_dpd,
    round(sum(dpd_sum)::numeric / nullif(sum(loans) filter (where bucket <> 'current'), 0), 2)
        as average_dpd_delinquent,
    round(sum(loans) filter (where bucket <> 'current')::numeric / nullif(sum(loans), 0), 4)
        as delinquency_rate,
    round(coalesce(sum(outstanding_minor) filter (where bucket in ('31-60', '61-90', '90+')), 0)
          ::numeric / nullif(sum(outstanding_minor), 0), 4) as par30_share
from {{ ref('stg_lending__dpd_daily_summary') }}
group by business_date
