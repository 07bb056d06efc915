"""Blnk ledger (github.com/blnkfinance/blnk) as a Dagster resource: the settings of one server
and the `BlnkClient` (`lending_pipelines.partners.blnk`) built from them, one per step."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from ..partners.blnk.client import BlnkClient


class BlnkResource(dg.ConfigurableResource):
    """One Blnk server: its settings, visible in the UI, and the client it builds."""

    base_url: str = Field(description="e.g. http://localhost:5001, or the sandbox's /blnk prefix.")
    api_key: str | None = Field(
        default=None,
        repr=False,
        description="Sent as X-Blnk-Key (only enforced when the server runs in secure mode).",
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds per HTTP request.")
    retries: int = Field(default=3, ge=0, description="Extra attempts for retryable failures.")
    backoff_seconds: float = Field(default=0.2, ge=0, description="First retry delay.")
    backoff_cap_seconds: float = Field(default=5.0, ge=0)
    skip_queue: bool = Field(
        default=True,
        description="Process posts synchronously (APPLIED / 409 / 400) instead of QUEUED.",
    )

    _client: BlnkClient | None = PrivateAttr(default=None)

    def get_client(self) -> BlnkClient:
        """The client of this step (one HTTP connection pool), built on first use."""
        if self._client is None:
            self._client = BlnkClient(
                self.base_url,
                api_key=self.api_key,
                timeout=self.timeout,
                retries=self.retries,
                backoff_seconds=self.backoff_seconds,
                backoff_cap_seconds=self.backoff_cap_seconds,
                skip_queue=self.skip_queue,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
