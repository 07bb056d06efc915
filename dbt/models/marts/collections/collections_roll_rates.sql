-- Bucket roll rates: for each pair of dates, the share of loans in each bucket on the first date
-- that are in each bucket on the second. Pairs: consecutive computed days (`day`) and
-- consecutive month ends, the last computed day of each month (`month`). A loan's bucket on a
-- date is its latest bucket change on or before it, else current; loans opened after the first
-- date are not counted. Only loans that changed bucket are read row by row; every other loan is
-- current on both dates and is counted in one number.
with days as (
    select business_date from {{ ref('stg_lending__dpd_days') }}
),
pairs as (
    select 'day' as period,
           lag(business_date) over (order by business_date) as from_date,
           business_date as to_date
    from days
    union all
    select 'month' as period,
           lag(month_end) over (order by month_end) as from_date,
           month_end as to_date
    from (
        select max(business_date) as month_end
        from days
        group by date_trunc('month', business_date)
    ) month_ends
),
changed_loans as (
    select distinct c.loan_id, l.opened_on
    from {{ ref('stg_lending__dpd_bucket_changes') }} c
    join {{ ref('stg_lending__collection_loans') }} l on l.loan_id = c.loan_id
),
states as (
    select p.period, p.from_date, p.to_date, cl.loan_id,
        coalesce((
            select c.to_bucket from {{ ref('stg_lending__dpd_bucket_changes') }} c
            where c.loan_id = cl.loan_id and c.business_date <= p.from_date
            order by c.business_date desc limit 1
        ), 'current') as from_bucket,
        coalesce((
            select c.to_bucket from {{ ref('stg_lending__dpd_bucket_changes') }} c
            where c.loan_id = cl.loan_id and c.business_date <= p.to_date
            order by c.business_date desc limit 1
        ), 'current') as to_bucket
    from pairs p
    join changed_loans cl on cl.opened_on <= p.from_date
    where p.from_date is not null
),
moved as (
    select period, from_date, to_date, from_bucket, to_bucket, count(*) as loans
    from states
    group by period, from_date, to_date, from_bucket, to_bucket
),
never_changed as (
    select p.period, p.from_date, p.to_date, 'current' as from_bucket, 'current' as to_bucket,
           count(l.loan_id) as loans
    from pairs p
    join {{ ref('stg_lending__collection_loans') }} l on l.opened_on <= p.from_date
    where p.from_date is not null
      and not exists (select 1 from changed_loans cl where cl.loan_id = l.loan_id)
    group by p.period, p.from_date, p.to_date
),
counts as (
    select period, from_date, to_date, from_bucket, to_bucket, sum(loans)::bigint as loans
    from (select * from moved union all select * from never_changed) all_loans
    group by period, from_date, to_date, from_bucket, to_bucket
)
select
    period || ':' || from_date || ':' || to_date || ':' || from_bucket || ':' || to_bucket
        as roll_key,
    period,
    from_date,
    to_date,
    from_bucket,
    to_bucket,
    loans,
    round(loans::numeric
          / nullif(sum(loans) over (partition by period, from_date, to_date, from_bucket), 0), 4)
        as share_of_from_bucket
from counts
where loans > 0
