"""What the payout definitions share: group, owners, tags, retry policy, pool, the shared
Stripe request-rate limiter, money and outcome formatting for metadata."""

from collections.abc import Sequence
from datetime import date

import dagster as dg
import sqlalchemy as sa

from ...db import payouts as db
from ...db.rate_limit import PostgresRateLimiter
from ...domain.money import format_minor
from ...instance import STRIPE_POOL
from ...resources.payouts_config import PayoutsConfig
from ...workflows.payouts.processing import WorkerReport
from ..metadata import table_metadata

GROUP = "payouts"
OWNERS = ["team:payments"]
RATE_LIMIT_NAME = "stripe"
POOL = STRIPE_POOL
RETRY = dg.RetryPolicy(
    max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def stripe_limiter(engine: sa.Engine, config: PayoutsConfig) -> PostgresRateLimiter:
    """The Stripe request-rate limit every payout worker and run shares (one PostgreSQL row)."""
    return PostgresRateLimiter(engine, RATE_LIMIT_NAME, config.stripe_requests_per_second)


def money(amount_minor: int, currency: str) -> str:
    return format_minor(amount_minor, currency)


def outcomes_table(summary: db.EligibilitySummary, currency: str) -> dg.MetadataValue:
    rows = [
        {
            "outcome": outcome,
            "creators": counts.creators,
            "tokens": counts.tokens,
            "amount": money(counts.amount_minor, currency),
        }
        for outcome, counts in sorted(summary.outcomes.items())
    ]
    return table_metadata(rows, ["outcome", "creators", "tokens", "amount"])


def transfers_metadata(
    engine: sa.Engine, payout_date: date, reports: Sequence[WorkerReport]
) -> dict[str, object]:
    """The batch's totals after its workers ran, with a table of its failed items."""
    with engine.begin() as conn:
        batch = db.get_batch(conn, payout_date)
        if batch is None:
            raise db.PayoutStateError(f"payout date {payout_date}: no batch")
        totals = db.refresh_batch_totals(conn, batch.batch_id)
        failures = db.failed_items(conn, batch.batch_id)
    seconds = max((r.seconds for r in reports), default=0.0)
    transfers_made = sum(r.paid for r in reports)
    failure_rows = [
        {
            "creator": row.creator_id,
            "item": row.idempotency_key,
            "amount": money(row.amount_minor, totals.currency),
            "error": row.error_kind,
            "retryable": "yes" if row.retryable else "no",
            "reason": (row.error_message or "")[:160],
        }
        for row in failures
    ]
    return {
        "payout_date": payout_date.isoformat(),
        "status": totals.status,
        "items": totals.item_count,
        "paid": totals.paid_count,
        "failed": totals.failed_count,
        "open": totals.pending_count,
        "paid_amount_minor": totals.paid_amount_minor,
        "failed_amount_minor": totals.failed_amount_minor,
        "paid_amount": money(totals.paid_amount_minor, totals.currency),
        "failed_amount": money(totals.failed_amount_minor, totals.currency),
        "workers": len(reports),
        "chunks_processed": sum(r.chunks for r in reports),
        "chunks_per_worker": [r.chunks for r in reports],
        "transfers_made_this_run": transfers_made,
        "transfers_replayed_this_run": sum(r.replayed for r in reports),
        "rate_limited_retries": sum(r.rate_limited_retries for r in reports),
        "transfers_per_second": round(transfers_made / seconds, 2) if seconds else 0.0,
        "failures": table_metadata(
            failure_rows, ["creator", "item", "amount", "error", "retryable", "reason"]
        ),
    }
