"""The Twilio WhatsApp sender as a resource: configuration and a client factory, nothing more.

Workflows send through `lending_pipelines.workflows.messaging.send_whatsapp_once`, which keeps
one idempotency key to at most one attempt (the outbox).
"""

from __future__ import annotations

import dagster as dg
import httpx
from pydantic import Field

from ..partners.twilio import WhatsAppClient


class WhatsAppResource(dg.ConfigurableResource):
    """Twilio WhatsApp sender. `base_url` is the sandbox's .../twilio in development."""

    account_sid: str = Field(description="Twilio Account SID (AC...).")
    auth_token: str = Field(repr=False, description="Twilio auth token; use EnvVar.")
    from_number: str = Field(description="WhatsApp sender, +E164 or whatsapp:+E164.")
    base_url: str = Field(default="https://api.twilio.com")
    status_callback_url: str | None = Field(
        default=None, description="Where Twilio POSTs status callbacks (the webhook receiver)."
    )
    timeout_seconds: float = Field(default=15.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    rate_limit_max_retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=0.5, ge=0)
    backoff_cap_seconds: float = Field(default=8.0, ge=0)

    def get_client(self) -> WhatsAppClient:
        http = httpx.Client(
            base_url=self.base_url.rstrip("/"),
            auth=httpx.BasicAuth(self.account_sid, self.auth_token),
            timeout=httpx.Timeout(self.timeout_seconds, connect=self.connect_timeout_seconds),
            headers={"Accept": "application/json"},
        )
        return WhatsAppClient(
            http,
            account_sid=self.account_sid,
            from_number=self.from_number,
            status_callback_url=self.status_callback_url,
            rate_limit_max_retries=self.rate_limit_max_retries,
            backoff_seconds=self.backoff_seconds,
            backoff_cap_seconds=self.backoff_cap_seconds,
            secrets=(self.auth_token,),
        )
