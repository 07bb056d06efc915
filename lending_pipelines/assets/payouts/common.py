"""What the payout definitions share: group, owners, tags, retry policy, pool, the shared
Stripe request-rate limiter, money and outcome formatting for metadata."""

import dagster as dg
import sqlalchemy as sa

from ...db import payouts as db
from ...db.rate_limit import PostgresRateLimiter
from ...domain.money import format_minor
from ...instance import STRIPE_POOL
from ...resources.payouts_config import PayoutsConfig
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
