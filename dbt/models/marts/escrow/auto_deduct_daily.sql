-- One row per business day and currency: what the wallet auto-deduct took towards retailers'
-- debt, what failed or is still pending, and which rule bounded each deduction.
select
    business_date || ':' || currency as deduct_day_key,
    business_date,
    currency,
    count(distinct retailer_id) as retailers,
    count(*) filter (where status = 'applied') as applied_deductions,
    count(*) filter (where status = 'failed') as failed_deductions,
    count(*) filter (where status = 'pending') as pending_deductions,
    coalesce(sum(amount_minor) filter (where status = 'applied'), 0)::bigint
        as deducted_amount_minor,
    coalesce(sum(amount_minor) filter (where status = 'failed'), 0)::bigint
        as failed_amount_minor,
    coalesce(sum(amount_minor) filter (where status = 'pending'), 0)::bigint
        as pending_amount_minor,
    sum(debt_before_minor)::bigint as debt_before_minor,
    round(
        coalesce(sum(amount_minor) filter (where status = 'applied'), 0)::numeric
        / nullif(sum(debt_before_minor), 0),
        4
    ) as share_of_debt_recovered,
    count(*) filter (where limited_by = 'percentage') as limited_by_percentage,
    count(*) filter (where limited_by = 'max_daily') as limited_by_max_daily,
    count(*) filter (where limited_by = 'minimum_balance') as limited_by_minimum_balance,
    count(*) filter (where recovered) as recovered_deductions
from {{ ref('stg_lending__repayments') }}
group by business_date, currency
