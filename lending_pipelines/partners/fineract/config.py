"""The connection and behaviour settings of one Fineract partner (tenant)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .models import FilterMode

if TYPE_CHECKING:
    from .client import FineractClient


@dataclass(frozen=True)
class FineractConfig:
    """Connection and behaviour settings for one partner (tenant)."""

    base_url: str
    tenant_id: str
    username: str
    password: str = field(repr=False)
    filter_mode: FilterMode = "status"
    page_size: int = 100
    page_concurrency: int = 10
    timeout_seconds: float = 10.0
    max_attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 8.0

    def __post_init__(self) -> None:
        if self.filter_mode not in ("status", "sqlSearch"):
            raise ValueError(
                f"Fineract tenant {self.tenant_id!r}: filter_mode is {self.filter_mode!r}, "
                "expected 'status' (Fineract >= 1.9) or 'sqlSearch' (older)"
            )
        for name in ("page_size", "page_concurrency", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"Fineract tenant {self.tenant_id!r}: {name} is {getattr(self, name)!r}, "
                    "expected >= 1"
                )
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"Fineract tenant {self.tenant_id!r}: base_url {self.base_url!r} is not an "
                "http(s) URL"
            )


class FineractClients(Protocol):
    """What builds one partner's client: `resources.fineract.FineractResource` in Dagster, any
    object with the same `client_for` and `page_concurrency` elsewhere (bench, tests)."""

    page_concurrency: int

    def client_for(
        self,
        *,
        base_url: str,
        tenant_id: str,
        username: str,
        password: str,
        filter_mode: FilterMode | None = None,
    ) -> FineractClient: ...
