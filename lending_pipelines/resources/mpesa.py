"""M-Pesa Daraja as a Dagster resource: the settings shared by every partner (callback URLs,
timeouts, retries) plus an optional default app, visible in the UI, and `client_for(...)`, which
builds the plain `lending_pipelines.partners.mpesa.MpesaClient` of one partner row.

The client, payloads, token cache and errors live in `partners/mpesa/`; the names re-exported
here keep `from lending_pipelines.resources.mpesa import ...` working."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ..partners.mpesa import (
    B2C_PATH,
    OAUTH_PATH,
    PRODUCTION_BASE_URL,
    SANDBOX_BASE_URL,
    STATUS_PATH,
    TOKEN_CACHE,
    Acknowledgement,
    MpesaAuthError,
    MpesaClient,
    MpesaConfig,
    MpesaDuplicateRequestError,
    MpesaError,
    MpesaFinalError,
    MpesaOutcomeUnknownError,
    MpesaPayloadError,
    MpesaResult,
    MpesaRetryableError,
    TokenCache,
    parse_result_callback,
)

__all__ = [
    "Acknowledgement",
    "B2C_PATH",
    "MpesaAuthError",
    "MpesaClient",
    "MpesaConfig",
    "MpesaDuplicateRequestError",
    "MpesaError",
    "MpesaFinalError",
    "MpesaOutcomeUnknownError",
    "MpesaPayloadError",
    "MpesaResource",
    "MpesaResult",
    "MpesaRetryableError",
    "OAUTH_PATH",
    "PRODUCTION_BASE_URL",
    "SANDBOX_BASE_URL",
    "STATUS_PATH",
    "TOKEN_CACHE",
    "TokenCache",
    "parse_result_callback",
]


class MpesaResource(dg.ConfigurableResource):
    """Daraja settings shared by every partner (callback URLs, timeouts, retries) plus an
    optional default app. Partners' own credentials come from the `partners` table through
    `client_for`."""

    base_url: str = Field(default=SANDBOX_BASE_URL, description="Daraja host, no path")
    consumer_key: str | None = None
    consumer_secret: str | None = Field(default=None, repr=False, description="Secret: EnvVar")
    shortcode: str | None = None
    initiator_name: str | None = None
    security_credential: str | None = Field(default=None, repr=False, description="Secret")
    result_url: str = Field(
        default="",
        description="ResultURL given to Daraja; `{token}` is replaced by callback_token",
    )
    timeout_url: str = Field(default="", description="QueueTimeOutURL (default: ResultURL)")
    callback_token: str | None = Field(
        default=None, repr=False, description="Secret path token of the callback URLs: EnvVar"
    )
    command_id: str = "BusinessPayment"
    timeout_seconds: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    backoff_base_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=8.0, ge=0)
    token_refresh_margin_seconds: float = Field(default=60.0, ge=0)

    def callback_urls(self) -> tuple[str, str]:
        """(ResultURL, QueueTimeOutURL) with the token filled in; ("", "") when a URL needs a
        token that is not configured — nothing may be sent then, results could never arrive."""

        def fill(url: str) -> str:
            if "{token}" not in url:
                return url
            return url.replace("{token}", self.callback_token) if self.callback_token else ""

        result = fill(self.result_url)
        return result, fill(self.timeout_url) or result

    def client_for(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        shortcode: str,
        initiator_name: str,
        security_credential: str,
        base_url: str | None = None,
    ) -> MpesaClient:
        return MpesaClient(
            MpesaConfig(
                base_url=base_url or self.base_url,
                consumer_key=consumer_key,
                consumer_secret=consumer_secret,
                shortcode=shortcode,
                initiator_name=initiator_name,
                security_credential=security_credential,
                result_url=self.callback_urls()[0],
                timeout_url=self.callback_urls()[1],
                command_id=self.command_id,
                timeout_seconds=self.timeout_seconds,
                max_attempts=self.max_attempts,
                backoff_base_seconds=self.backoff_base_seconds,
                backoff_max_seconds=self.backoff_max_seconds,
                token_refresh_margin_seconds=self.token_refresh_margin_seconds,
            )
        )

    def client(self) -> MpesaClient:
        missing = [
            name
            for name in (
                "consumer_key", "consumer_secret", "shortcode", "initiator_name",
                "security_credential",
            )
            if not getattr(self, name)
        ]  # fmt: skip
        if missing:
            raise ValueError(f"MpesaResource has no default app: {missing} not set")
        return self.client_for(
            consumer_key=self.consumer_key,
            consumer_secret=self.consumer_secret,
            shortcode=self.shortcode,
            initiator_name=self.initiator_name,
            security_credential=self.security_credential,
        )
