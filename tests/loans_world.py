"""A small world for the loans workflow tests: partners in the database pointing at the sandbox,
the real callback receiver storing M-Pesa results, and the workflow's Dagster definitions with
resources aimed at all of it. Import the fixtures into a test module with
`from tests.loans_world import *  # noqa: F403`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from lending_dev.sandbox.mpesa import DEFAULT_APPS
from lending_dev.sandbox.server import BackgroundServer
from lending_pipelines.assets.loans.assets import LOANS_ASSETS
from lending_pipelines.assets.loans.checks import LOANS_ASSET_CHECKS
from lending_pipelines.assets.loans.jobs import LOANS_JOBS, LOANS_SCHEDULES
from lending_pipelines.crypto import SecretBox
from lending_pipelines.db import loans as loans_db
from lending_pipelines.db.common import inbound_events
from lending_pipelines.db.loans import MpesaCredentials, PartnerSetup
from lending_pipelines.resources.alerts import AlertsResource
from lending_pipelines.resources.database import DatabaseResource
from lending_pipelines.resources.fineract import FineractResource
from lending_pipelines.resources.loans_config import LoansConfig
from lending_pipelines.resources.mpesa import TOKEN_CACHE, MpesaResource
from lending_pipelines.sensors.mpesa_results import LOANS_RESULT_SENSORS
from lending_pipelines.sensors.run_failures import loans_run_failure_alert
from lending_pipelines.settings import get_settings
from lending_pipelines.webhooks.app import build_app as build_receiver

__all__ = ["LoansWorld", "RecordingAlerts", "loans_env", "receiver", "world"]

CALLBACK_TOKEN = "test-callback-token-0123456789"
APPS = {app["consumer_key"].removesuffix("-consumer-key"): app for app in DEFAULT_APPS}
SENT_ALERTS: list[dict[str, Any]] = []


class RecordingAlerts(AlertsResource):
    """The real resource's interface; remembers what it was asked to send."""

    def send(self, title: str, text: str, severity: str = "error", fields=None) -> bool:
        SENT_ALERTS.append({"title": title, "text": text, "severity": severity})
        return True


@pytest.fixture
def loans_env(monkeypatch) -> Iterator[dict[str, str]]:
    """Settings for fast tests: an encryption key, no reconciliation delay, 1 s backoff."""
    env = {
        "LENDING_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "LENDING_DISBURSEMENT_RECONCILE_AFTER_MINUTES": "0",
        "LENDING_DISBURSEMENT_BACKOFF_SECONDS": "1",
        "CRON_ENABLED": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    TOKEN_CACHE.clear()
    SENT_ALERTS.clear()
    yield env
    get_settings.cache_clear()
    TOKEN_CACHE.clear()


@pytest.fixture(scope="session")
def receiver(db_url: str) -> Iterator[BackgroundServer]:
    server = BackgroundServer(
        build_receiver(database_url=db_url, mpesa_token=CALLBACK_TOKEN, stripe_webhook_secret=""),
        health_path="/health",
    ).start()
    yield server
    server.stop()


@dataclass
class LoansWorld:
    engine: sa.Engine
    db_url: str
    sandbox: Any
    receiver_url: str
    fineract: FineractResource = field(
        default_factory=lambda: FineractResource(
            page_size=50, timeout_seconds=2, max_attempts=2, backoff_base_seconds=0.05
        )
    )
    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)

    @property
    def box(self) -> SecretBox:
        return SecretBox.from_settings(get_settings())

    def resources(self) -> dict[str, Any]:
        return {
            "database": DatabaseResource(url=self.db_url),
            "fineract": self.fineract,
            "mpesa": MpesaResource(
                base_url=self.sandbox.url("mpesa"),
                result_url=f"{self.receiver_url}/mpesa/{CALLBACK_TOKEN}/result",
                timeout_url=f"{self.receiver_url}/mpesa/{CALLBACK_TOKEN}/timeout",
                timeout_seconds=2,
                backoff_base_seconds=0.01,
            ),
            "alerts": RecordingAlerts(),
            # Built here, after the tests' environment patches (LENDING_* variables).
            "loans_config": LoansConfig.from_settings(get_settings()),
        }

    def definitions(self, resources: dict[str, Any] | None = None) -> dg.Definitions:
        return dg.Definitions(
            assets=LOANS_ASSETS,
            asset_checks=LOANS_ASSET_CHECKS,
            jobs=LOANS_JOBS,
            schedules=LOANS_SCHEDULES,
            sensors=[*LOANS_RESULT_SENSORS, loans_run_failure_alert],
            resources=resources or self.resources(),
        )

    def add_partner(
        self,
        tenant: str,
        password: str | None = None,
        products: tuple[int, ...] = (1, 2),
        *,
        filter_mode: str = "status",
        mpesa: bool = True,
        **extra: Any,
    ) -> None:
        app = APPS[tenant] if mpesa else None
        setup = PartnerSetup(
            id=tenant,
            name=tenant.title(),
            fineract_base_url=self.sandbox.url("fineract"),
            fineract_tenant_id=tenant,
            fineract_username="mifos",
            fineract_password=password or f"{tenant}-pass",
            fineract_filter_mode=filter_mode,
            mpesa=MpesaCredentials(
                consumer_key=app["consumer_key"],
                consumer_secret=app["consumer_secret"],
                shortcode=app["shortcode"],
                initiator_name=app["initiator_name"],
                security_credential=app["security_credential"],
            )
            if app
            else None,
            **extra,
        )
        with self.engine.begin() as conn:
            loans_db.save_partner(conn, setup, self.box)
            loans_db.set_auto_disbursal(conn, tenant, products)

    def run(
        self, job: str, raise_on_error: bool = True, resources: dict[str, Any] | None = None
    ) -> dg.ExecuteInProcessResult:
        return (
            self.definitions(resources)
            .resolve_job_def(job)
            .execute_in_process(instance=self.instance, raise_on_error=raise_on_error)
        )

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every callback the sandbox is sending has been stored."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sandbox.state("mpesa")["callbacks_pending"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("M-Pesa sandbox callbacks still pending")

    def apply_results(self) -> None:
        """What the sensor does on its next tick, then the run it launches."""
        self.settle()
        with self.engine.connect() as conn:
            waiting = conn.execute(
                sa.select(sa.func.count()).where(
                    inbound_events.c.provider == "mpesa", inbound_events.c.processed_at.is_(None)
                )
            ).scalar()
        if waiting:
            assert self.run("mpesa_results_job").success

    def requests(self) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(loans_db.disbursement_requests).order_by(
                        loans_db.disbursement_requests.c.id
                    )
                )
            )

    def tracked(self) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(loans_db.loan_tracking).order_by(loans_db.loan_tracking.c.id)
                )
            )


@pytest.fixture
def world(db, db_url, sandbox, receiver, loans_env) -> LoansWorld:
    sandbox.configure("mpesa", {"callback_delay_ms": 20})
    return LoansWorld(engine=db, db_url=db_url, sandbox=sandbox, receiver_url=receiver.base_url)
