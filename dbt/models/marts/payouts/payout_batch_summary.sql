-- One row per payout batch (= payout date): how many creators were paid, how much, what failed,
-- and whether the totals stored on the batch agree with its items.
with batches as (
    select * from {{ ref('stg_lending__payout_batches') }}
),

item_totals as (
    select
        batch_id,
        count(*) as items,
        count(*) filter (where status = 'paid') as paid_items,
        count(*) filter (where status = 'failed') as failed_items,
        count(*) filter (where status = 'failed' and retryable) as retryable_failed_items,
        count(*) filter (where status in ('pending', 'processing')) as open_items,
        count(*) filter (where outcome_unknown) as unknown_outcome_items,
        sum(tokens) as tokens,
        sum(amount_minor) as amount_minor,
        coalesce(sum(amount_minor) filter (where status = 'paid'), 0) as paid_amount_minor,
        coalesce(sum(amount_minor) filter (where status = 'failed'), 0) as failed_amount_minor,
        coalesce(sum(amount_minor) filter (where status in ('pending', 'processing')), 0)
            as open_amount_minor,
        sum(attempts) as transfer_attempts
    from {{ ref('stg_lending__payout_items') }}
    group by batch_id
)

select
    b.batch_id,
    b.payout_date,
    b.batch_hash,
    b.status,
    b.currency,
    b.token_rate,
    coalesce(t.items, 0)::bigint as items,
    coalesce(t.paid_items, 0)::bigint as paid_items,
    coalesce(t.failed_items, 0)::bigint as failed_items,
    coalesce(t.retryable_failed_items, 0)::bigint as retryable_failed_items,
    coalesce(t.open_items, 0)::bigint as open_items,
    coalesce(t.unknown_outcome_items, 0)::bigint as unknown_outcome_items,
    coalesce(t.tokens, 0)::bigint as tokens,
    coalesce(t.amount_minor, 0)::bigint as amount_minor,
    coalesce(t.paid_amount_minor, 0)::bigint as paid_amount_minor,
    coalesce(t.failed_amount_minor, 0)::bigint as failed_amount_minor,
    coalesce(t.open_amount_minor, 0)::bigint as open_amount_minor,
    coalesce(t.transfer_attempts, 0)::bigint as transfer_attempts,
    round(t.paid_items::numeric / nullif(t.items, 0), 4) as paid_rate,
    b.stored_item_count = coalesce(t.items, 0)
        and b.stored_total_amount_minor = coalesce(t.amount_minor, 0) as stored_totals_match,
    b.created_at,
    b.completed_at,
    round(extract(epoch from b.completed_at - b.created_at)::numeric / 60, 1)
        as minutes_to_complete
from batches as b
left join item_totals as t on t.batch_id = b.batch_id
