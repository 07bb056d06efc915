-- One row per day (LENDING_LOANS_TIMEZONE), partner and currency: the auto-disbursement funnel
-- from newly tracked loans to M-Pesa B2C requests and their outcomes, amounts in integer minor
-- units, the success rate against the 90 % target, and successes not yet recorded in Fineract.
{% set tz = "'" ~ var('loans_timezone') ~ "'" %}

with requests as (
    select
        *,
        (created_at at time zone {{ tz }})::date as business_date
    from {{ ref('stg_lending__disbursement_requests') }}
),

tracked as (
    select
        (first_seen_at at time zone {{ tz }})::date as business_date,
        partner_id,
        currency,
        count(*) as new_loans_tracked
    from {{ ref('stg_lending__loan_tracking') }}
    group by 1, 2, 3
),

outcomes as (
    select
        business_date,
        partner_id,
        currency,
        count(*) as requests,
        count(*) filter (where status = 'succeeded') as succeeded,
        count(*) filter (where status = 'failed') as failed,
        count(*) filter (where status = 'failed' and retryable) as failed_retryable,
        count(*) filter (where status = 'unknown') as unknown,
        count(*) filter (where status in ('pending', 'submitted')) as in_flight,
        sum(amount_minor) as requested_amount_minor,
        coalesce(sum(amount_minor) filter (where status = 'succeeded'), 0)
            as disbursed_amount_minor,
        coalesce(sum(amount_minor) filter (where status = 'failed'), 0) as failed_amount_minor,
        coalesce(sum(charge_minor) filter (where status = 'succeeded'), 0) as charges_minor,
        count(*) filter (where status = 'succeeded' and fineract_recorded_at is null)
            as awaiting_fineract_record,
        sum(attempts) as b2c_attempts,
        sum(status_queries) as status_queries,
        avg(extract(epoch from resolved_at - submitted_at)) filter (where status = 'succeeded')
            as avg_seconds_to_result,
        mode() within group (order by failure_reason) filter (where status = 'failed')
            as top_failure_reason
    from requests
    group by 1, 2, 3
),

days as (
    select business_date, partner_id, currency from outcomes
    union
    select business_date, partner_id, currency from tracked
)

select
    d.business_date || ':' || d.partner_id || ':' || d.currency as partner_day_key,
    d.business_date,
    d.partner_id,
    p.partner_name,
    d.currency,
    coalesce(t.new_loans_tracked, 0)::bigint as new_loans_tracked,
    coalesce(o.requests, 0)::bigint as requests,
    coalesce(o.succeeded, 0)::bigint as succeeded,
    coalesce(o.failed, 0)::bigint as failed,
    coalesce(o.failed_retryable, 0)::bigint as failed_retryable,
    coalesce(o.unknown, 0)::bigint as unknown,
    coalesce(o.in_flight, 0)::bigint as in_flight,
    coalesce(o.requested_amount_minor, 0)::bigint as requested_amount_minor,
    coalesce(o.disbursed_amount_minor, 0)::bigint as disbursed_amount_minor,
    coalesce(o.failed_amount_minor, 0)::bigint as failed_amount_minor,
    coalesce(o.charges_minor, 0)::bigint as charges_minor,
    round(o.succeeded::numeric / nullif(o.succeeded + o.failed, 0), 4) as success_rate,
    o.succeeded::numeric / nullif(o.succeeded + o.failed, 0)
        >= {{ var('disbursement_success_target') }} as meets_success_target,
    coalesce(o.awaiting_fineract_record, 0)::bigint as awaiting_fineract_record,
    coalesce(o.b2c_attempts, 0)::bigint as b2c_attempts,
    coalesce(o.status_queries, 0)::bigint as status_queries,
    round(o.avg_seconds_to_result::numeric, 1) as avg_seconds_to_result,
    o.top_failure_reason
from days as d
left join outcomes as o
    on o.business_date = d.business_date
    and o.partner_id = d.partner_id
    and o.currency = d.currency
left join tracked as t
    on t.business_date = d.business_date
    and t.partner_id = d.partner_id
    and t.currency = d.currency
left join {{ ref('stg_lending__partners') }} as p on p.partner_id = d.partner_id
