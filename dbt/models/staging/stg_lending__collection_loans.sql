select
    id as loan_id,
    principal_minor,
    currency,
    status,
    collector_id,
    dpd,
    bucket,
    dpd_changed_on,
    opened_on
from {{ source('lending', 'collection_loans') }}
