"""The resources every job can ask for, chosen by settings (never by `if` inside assets).

Secrets are `EnvVar`s so they are read in the run process and never stored in run config.
"""

from __future__ import annotations

from .resources.database import DatabaseResource
from .settings import Settings


def build_resources(settings: Settings) -> dict[str, object]:
    return {
        "database": DatabaseResource(statement_timeout_ms=settings.statement_timeout_ms),
    }
