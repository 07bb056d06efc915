"""Fineract as a Dagster resource: the settings shared by every partner (paging, timeouts,
retries), visible in the UI, and `client_for(...)`, which builds the plain
`lending_pipelines.partners.fineract.FineractClient` of one partner row.

The client, payloads and errors live in `partners/fineract/`; the names re-exported here keep
`from lending_pipelines.resources.fineract import ...` working."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ..partners.fineract import (
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    TENANT_HEADER,
    BadLoanRecord,
    FilterMode,
    FineractClient,
    FineractConfig,
    FineractError,
    FineractFinalError,
    FineractLoan,
    FineractPayloadError,
    FineractRetryableError,
    LoanStatus,
    LoanStatusId,
    format_command_date,
    parse_loan,
)

__all__ = [
    "API_PREFIX",
    "BadLoanRecord",
    "FilterMode",
    "FineractClient",
    "FineractConfig",
    "FineractError",
    "FineractFinalError",
    "FineractLoan",
    "FineractPayloadError",
    "FineractResource",
    "FineractRetryableError",
    "IDEMPOTENCY_HEADER",
    "LoanStatus",
    "LoanStatusId",
    "TENANT_HEADER",
    "format_command_date",
    "parse_loan",
]


class FineractResource(dg.ConfigurableResource):
    """Fineract settings shared by every partner, plus an optional default partner.

    Partners live in the database (`partners` table); the polling asset calls `client_for` per
    partner row. The connection fields here describe one partner for jobs that talk to a single
    server and may stay empty in the code location's default resource."""

    base_url: str | None = Field(default=None, description="e.g. https://host:8443 (no path)")
    tenant_id: str | None = Field(default=None, description="Fineract-Platform-TenantId")
    username: str | None = None
    password: str | None = Field(default=None, repr=False, description="Secret: use EnvVar")
    filter_mode: FilterMode = Field(
        default="status", description="'status' on Fineract >= 1.9, 'sqlSearch' before 1.9"
    )
    page_size: int = Field(default=100, ge=1, le=1000)
    page_concurrency: int = Field(
        default=10, ge=1, description="Pages fetched at once per partner, after its first page"
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per HTTP request")
    max_attempts: int = Field(default=4, ge=1, description="Attempts for retryable errors")
    backoff_base_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=8.0, ge=0)

    def client_for(
        self,
        *,
        base_url: str,
        tenant_id: str,
        username: str,
        password: str,
        filter_mode: FilterMode | None = None,
    ) -> FineractClient:
        """A client for one partner with this resource's paging, timeout and retry settings."""
        return FineractClient(
            FineractConfig(
                base_url=base_url,
                tenant_id=tenant_id,
                username=username,
                password=password,
                filter_mode=filter_mode or self.filter_mode,
                page_size=self.page_size,
                page_concurrency=self.page_concurrency,
                timeout_seconds=self.timeout_seconds,
                max_attempts=self.max_attempts,
                backoff_base_seconds=self.backoff_base_seconds,
                backoff_max_seconds=self.backoff_max_seconds,
            )
        )

    def client(self) -> FineractClient:
        """The client for the partner configured on the resource itself."""
        missing = [
            name
            for name in ("base_url", "tenant_id", "username", "password")
            if not getattr(self, name)
        ]
        if missing:
            raise ValueError(f"FineractResource has no default partner: {missing} not set")
        return self.client_for(
            base_url=self.base_url,
            tenant_id=self.tenant_id,
            username=self.username,
            password=self.password,
        )
