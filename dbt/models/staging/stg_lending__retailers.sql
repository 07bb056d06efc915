select
    id as retailer_id,
    name as retailer_name,
    preferred_language,
    credit_status,
    credit_paused_at,
    credit_pause_reason,
    created_at
from {{ source('lending', 'retailers') }}
