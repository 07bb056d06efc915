-- One row per partner per hour (LENDING_LOANS_TIMEZONE): how the Fineract polling went —
-- attempts, success rate against the 95 % target, cycle time against the 30 s target, loans
-- seen and newly tracked, and the last error.
{% set tz = "'" ~ var('loans_timezone') ~ "'" %}

with attempts as (
    select
        *,
        date_trunc('hour', started_at at time zone {{ tz }}) as hour_local
    from {{ ref('stg_lending__poll_attempts') }}
),

hourly as (
    select
        partner_id,
        hour_local,
        count(*) as poll_attempts,
        count(*) filter (where ok) as succeeded_polls,
        count(*) filter (where not ok) as failed_polls,
        count(*) filter (where ok is null) as unfinished_polls,
        coalesce(sum(loans_seen), 0) as loans_seen,
        coalesce(sum(new_loans), 0) as new_loans,
        avg(cycle_seconds) as avg_cycle_seconds,
        max(cycle_seconds) as max_cycle_seconds,
        (array_agg(error order by started_at desc) filter (where error is not null))[1]
            as last_error
    from attempts
    group by partner_id, hour_local
)

select
    h.partner_id || '@' || to_char(h.hour_local, 'YYYY-MM-DD"T"HH24:MI') as partner_hour_key,
    h.partner_id,
    p.partner_name,
    h.hour_local as hour_start_local,
    h.hour_local at time zone {{ tz }} as hour_start,
    h.poll_attempts,
    h.succeeded_polls,
    h.failed_polls,
    h.unfinished_polls,
    round(h.succeeded_polls::numeric / nullif(h.succeeded_polls + h.failed_polls, 0), 4)
        as success_rate,
    h.succeeded_polls::numeric / nullif(h.succeeded_polls + h.failed_polls, 0)
        >= {{ var('polling_success_target') }} as meets_success_target,
    h.failed_polls > 0 and h.succeeded_polls = 0 as failed_every_poll,
    round(h.avg_cycle_seconds, 3) as avg_cycle_seconds,
    round(h.max_cycle_seconds, 3) as max_cycle_seconds,
    h.max_cycle_seconds < {{ var('polling_cycle_seconds_target') }} as within_cycle_target,
    h.loans_seen::bigint as loans_seen,
    h.new_loans::bigint as new_loans,
    h.last_error
from hourly as h
left join {{ ref('stg_lending__partners') }} as p on p.partner_id = h.partner_id
