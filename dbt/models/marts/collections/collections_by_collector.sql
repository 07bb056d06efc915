-- One row per business day, collector and bucket (the bucket the loans started the day in):
-- loans assigned, what stays overdue, what was collected (paise) and the collection rate.
select
    business_date || ':' || collector_id || ':' || bucket as collector_day_key,
    business_date,
    collector_id,
    bucket,
    assigned_loans,
    overdue_minor,
    collected_minor,
    round(collected_minor::numeric / nullif(collected_minor + overdue_minor, 0), 4)
        as collection_rate
from {{ ref('stg_lending__collector_scores') }}
