select
    business_date,
    collector_id,
    bucket,
    assigned_loans,
    overdue_minor,
    collected_minor
from {{ source('lending', 'collector_scores') }}
