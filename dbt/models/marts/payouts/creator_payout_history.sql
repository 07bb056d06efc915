-- One row per payout item: every payout a creator was due, its outcome, and the running total
-- actually paid to that creator (per currency) up to and including that payout date.
with items as (
    select * from {{ ref('stg_lending__payout_items') }}
),

batches as (
    select batch_id, payout_date from {{ ref('stg_lending__payout_batches') }}
),

creators as (
    select * from {{ ref('stg_lending__creators') }}
)

select
    i.payout_item_id,
    i.idempotency_key,
    i.creator_id,
    c.creator_external_ref,
    c.creator_name,
    i.batch_id,
    b.payout_date,
    row_number() over (
        partition by i.creator_id order by b.payout_date, i.payout_item_id
    ) as payout_number,
    i.tokens,
    i.amount_minor,
    i.currency,
    i.status,
    i.status = 'paid' as is_paid,
    i.destination_account,
    i.stripe_transfer_id,
    i.attempts,
    i.error_kind,
    i.error_code,
    i.error_message,
    i.retryable,
    i.paid_at,
    coalesce(
        sum(i.amount_minor) filter (where i.status = 'paid') over (
            partition by i.creator_id, i.currency
            order by b.payout_date, i.payout_item_id
            rows between unbounded preceding and current row
        ),
        0
    )::bigint as cumulative_paid_amount_minor
from items as i
join batches as b on b.batch_id = i.batch_id
join creators as c on c.creator_id = i.creator_id
