"""Stripe Connect as a Dagster resource: its settings, visible in the UI, and the client it
builds (`lending_pipelines.partners.stripe`). The API key never appears in a repr."""

from __future__ import annotations

import dagster as dg
import stripe
from pydantic import Field

from ..partners.stripe.client import (
    InProcessRateLimiter,
    NoRateLimit,
    RateLimiter,
    StripeConnectClient,
)


class StripeConnectResource(dg.ConfigurableResource):
    """Stripe Connect for creator payouts. Point `api_base` at the sandbox in development."""

    api_key: str = Field(repr=False, description="Secret key (sk_live_/sk_test_); use EnvVar.")
    api_base: str = Field(
        default="https://api.stripe.com",
        description="Stripe API base URL; the sandbox's http://127.0.0.1:PORT/stripe in dev.",
    )
    max_network_retries: int = Field(
        default=2, ge=0, description="SDK retries (same key) on connection errors, 409 and 5xx."
    )
    timeout_seconds: float = Field(default=30.0, gt=0)
    rate_limit_max_retries: int = Field(
        default=6, ge=0, description="Our retries of 429 answers (the SDK does not retry them)."
    )
    rate_limit_backoff_seconds: float = Field(default=0.5, ge=0)
    rate_limit_backoff_cap_seconds: float = Field(default=8.0, ge=0)
    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        description="In-process request-rate limit when the caller passes no shared limiter.",
    )

    def get_client(self, limiter: RateLimiter | None = None) -> StripeConnectClient:
        """A client for one step/worker. Pass a shared limiter to pace several workers."""
        if limiter is None:
            limiter = (
                InProcessRateLimiter(self.requests_per_second)
                if self.requests_per_second
                else NoRateLimit()
            )
        sdk = stripe.StripeClient(
            self.api_key,
            base_addresses={"api": self.api_base.rstrip("/")},
            http_client=stripe.HTTPXClient(timeout=self.timeout_seconds, allow_sync_methods=True),
            max_network_retries=self.max_network_retries,
        )
        return StripeConnectClient(
            sdk,
            limiter=limiter,
            rate_limit_max_retries=self.rate_limit_max_retries,
            rate_limit_backoff_seconds=self.rate_limit_backoff_seconds,
            rate_limit_backoff_cap_seconds=self.rate_limit_backoff_cap_seconds,
            secrets=(self.api_key,),
        )
