select
    id as poll_attempt_id,
    partner_id,
    run_id,
    started_at,
    finished_at,
    ok,
    loans_seen,
    new_loans,
    pages,
    error,
    extract(epoch from finished_at - started_at)::numeric(12, 3) as cycle_seconds
from {{ source('lending', 'poll_attempts') }}
