"""A request-rate limit shared by every worker process and run, stored in PostgreSQL.

Used by the payout workers (Stripe); any partner call paced across processes can use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from .meta import metadata

rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=False),
)


class PostgresRateLimiter:
    """A request-rate limit shared by every worker process and run (generic cell rate
    algorithm on one row of `rate_limits`): each caller reserves the next free slot, 1/rate
    seconds after the previous one, in one atomic statement, then sleeps until it."""

    def __init__(
        self,
        engine: sa.Engine,
        name: str,
        requests_per_second: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second is {requests_per_second!r}, expected > 0")
        self.engine = engine
        self.name = name
        self.interval = 1.0 / requests_per_second
        self._sleep = sleep

    def acquire(self) -> None:
        with self.engine.begin() as conn:
            wait = conn.execute(
                sa.text(
                    """
                    INSERT INTO lending.rate_limits AS r (name, next_slot_at)
                    VALUES (:name, clock_timestamp() + make_interval(secs => :interval))
                    ON CONFLICT (name) DO UPDATE
                    SET next_slot_at = greatest(r.next_slot_at, clock_timestamp())
                                       + make_interval(secs => :interval)
                    RETURNING extract(epoch FROM r.next_slot_at - clock_timestamp())::float
                              - :interval
                    """
                ),
                {"name": self.name, "interval": self.interval},
            ).scalar_one()
        if wait > 0:
            self._sleep(wait)
