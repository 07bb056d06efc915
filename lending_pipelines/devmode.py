"""Dev mode: the embedded PostgreSQL, generated dev secrets and the local partner services.
The code location's side of it lives here; the dev tooling itself (secrets, sandbox, seeds,
supervisor) is the `lending_dev` package, which is not in the wheel.

It is on only when asked for: LENDING_DEV_MODE (set by `make dev`, `make test`, the tests), or
plain `dagster dev` / `dg dev` run from this repository. Outside it nothing local is started or
generated and a missing LENDING_DATABASE_URL stops start-up.

`dagster dev` / `dg dev` get the dev secrets (the same ones `make dev` uses) and the embedded
database on demand, but do not start the sandbox and the callback receiver: when those do not
answer, the code location fails to load with one message saying what to run.
"""

from __future__ import annotations

import os
import sys

import httpx

from .settings import PROJECT_ROOT, Settings, SettingsError, get_settings

SANDBOX_HEALTH_PATH = "/_admin/health"
RECEIVER_HEALTH_PATH = "/health"


class DevServicesNotRunning(SettingsError):
    """`dagster dev` from the repository without the local partner services."""


def started_by_dagster_dev() -> bool:
    """`dagster dev` or `dg dev` (both set DAGSTER_IS_DEV_CLI) on a source checkout."""
    return bool(os.environ.get("DAGSTER_IS_DEV_CLI")) and (PROJECT_ROOT / "pyproject.toml").exists()


def serving_code() -> bool:
    """This process is a code server (`dagster api grpc` / `dagster code-server`), not a check
    such as `dg check defs` (which sets DAGSTER_IS_DEV_CLI too)."""
    return "grpc" in sys.argv[1:3] or "code-server" in sys.argv[1:3]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def require_local_services(settings: Settings) -> None:
    missing = [
        f"{name} {base}"
        for name, base, path in (
            ("partner sandbox", settings.sandbox_url, SANDBOX_HEALTH_PATH),
            ("callback receiver", settings.webhooks_url, RECEIVER_HEALTH_PATH),
        )
        if not _answers(base + path)
    ]
    if missing:
        raise DevServicesNotRunning(
            "dagster dev / dg dev from the repository needs the local partner services, and "
            f"{' and '.join(missing)} {'do' if len(missing) > 1 else 'does'} not answer. "
            "Run `make dev` instead: it starts the embedded PostgreSQL (migrated, with demo "
            "data), the sandbox, the receiver and Dagster together."
        )


def prepare_code_location() -> Settings:
    """Called when the code location loads. Under plain `dagster dev` / `dg dev` from the
    repository, enter dev mode (and check the local services in a code server); outside dev
    mode, require LENDING_DATABASE_URL."""
    settings = get_settings()
    if not settings.dev_mode and started_by_dagster_dev():
        # A source checkout (started_by_dagster_dev), so the dev tooling is there.
        from lending_dev.devenv import enter_dev_mode

        enter_dev_mode()
        settings = get_settings()
        if serving_code():
            require_local_services(settings)
    if not settings.dev_mode and not settings.database_url:
        raise SettingsError(
            "LENDING_DATABASE_URL is not set: outside dev mode (LENDING_DEV_MODE, `make dev`, "
            "`dagster dev` from the repository) the code location needs the operational "
            "database's URL"
        )
    return settings
