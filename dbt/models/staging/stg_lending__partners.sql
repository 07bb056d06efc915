-- Partners without any credential column (encrypted or not): analytics never needs them.
select
    id as partner_id,
    name as partner_name,
    active as is_active,
    currency
from {{ source('lending', 'partners') }}
