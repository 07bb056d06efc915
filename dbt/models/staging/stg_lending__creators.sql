select
    id as creator_id,
    external_ref as creator_external_ref,
    display_name as creator_name,
    kyc_status,
    stripe_account_id,
    payouts_enabled
from {{ source('lending', 'creators') }}
