select
    id as loan_tracking_id,
    partner_id,
    fineract_loan_id,
    loan_product_id,
    product_name,
    status_id,
    status_value,
    -- Fineract reports principal in major units with up to 6 decimals; kept exact (numeric).
    principal,
    currency,
    approved_on,
    first_seen_at,
    last_seen_at
from {{ source('lending', 'loan_tracking') }}
