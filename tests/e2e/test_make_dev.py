"""`make dev` brings up the whole system, survives a crash, stops on Ctrl-C, and keeps its state.

Runs `lending dev` (what `make dev` runs once dependencies are installed) with its own
LENDING_HOME and free ports, exactly as a developer would, and talks to it over HTTP. The first
start is killed with SIGKILL (the whole process group) while a polling run is in flight; the
second start must fail that run, let the next polling run through, and stop everything —
PostgreSQL included — on Ctrl-C.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest
import sqlalchemy as sa

from lending_dev.sandbox.server import free_port
from lending_pipelines.settings import PROJECT_ROOT

STARTUP_BUDGET_SECONDS = 180
RUN_BUDGET_SECONDS = 240
STOP_BUDGET_SECONDS = 90

LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
LAUNCH_POLLING = """
mutation { launchRun(executionParams: {
    selector: { repositoryLocationName: "lending_pipelines", repositoryName: "__repository__",
                jobName: "loan_polling_job" }, runConfigData: {} }) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
} }
"""
RUN_STATUS = """
query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }
"""


def _wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.5)


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(url, timeout=2).status_code == 200
    return False


def _up(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except httpx.TransportError:
        return False


class DevSystem:
    def __init__(self, tmp_path):
        self.home = tmp_path / "home"
        self.log_path = tmp_path / "dev.log"
        self.ports = {"dagster": free_port(), "sandbox": free_port(), "webhooks": free_port()}
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"LENDING_DATABASE_URL", "DAGSTER_HOME", "LENDING_DEV_MODE"}
        }
        self.env.update(
            LENDING_HOME=str(self.home),
            LENDING_SANDBOX_URL=f"http://127.0.0.1:{self.ports['sandbox']}",
            LENDING_WEBHOOKS_URL=f"http://127.0.0.1:{self.ports['webhooks']}",
            # The run the crash interrupts must still be polling when the kill comes.
            LENDING_POLL_TIMEOUT_SECONDS="600",
            CRON_ENABLED="false",
        )
        self.process: subprocess.Popen | None = None

    @property
    def dagster(self) -> str:
        return f"http://127.0.0.1:{self.ports['dagster']}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lending_pipelines.cli", "dev"]
                + ["--port", str(self.ports["dagster"])],
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for url in (
            f"{self.dagster}/server_info",
            f"{self.env['LENDING_SANDBOX_URL']}/_admin/health",
            f"{self.env['LENDING_WEBHOOKS_URL']}/health",
        ):
            _wait_until(lambda url=url: _answers(url), STARTUP_BUDGET_SECONDS, f"{url} answering")
        workspace = self.graphql(LOCATION_QUERY)["workspaceOrError"]
        entries = {e["name"]: e["locationOrLoadError"] for e in workspace["locationEntries"]}
        assert entries["lending_pipelines"]["__typename"] == "RepositoryLocation", entries

    def graphql(self, query: str, **variables) -> dict:
        response = httpx.post(
            f"{self.dagster}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        response.raise_for_status()
        return response.json()["data"]

    def launch_polling_run(self) -> str:
        launched = self.graphql(LAUNCH_POLLING)["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        return self.graphql(RUN_STATUS, id=run_id)["runOrError"]["status"]

    def wait_for_status(self, run_id: str, statuses: set[str]) -> str:
        return _wait_until(
            lambda: (status := self.run_status(run_id)) in statuses and status,
            RUN_BUDGET_SECONDS,
            f"run {run_id} reaching {statuses}",
        )

    def postmaster(self) -> psutil.Process:
        from pgserver.utils import PostmasterInfo

        return PostmasterInfo.read_from_pgdata(self.home / "pg").process

    def signal_group(self, signum: int) -> None:
        # Ctrl-C in a terminal (or a kill of `make dev`'s job) signals the whole process group.
        os.killpg(self.process.pid, signum)
        self.process.wait(timeout=STOP_BUDGET_SECONDS)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.mark.slow(seconds=120)
def test_make_dev_recovers_from_a_crash_mid_run_and_stops_everything_on_ctrl_c(server_tmp_path):
    dev = DevSystem(server_tmp_path)
    try:
        # First start: store a marker in Dagster's storage, then crash in the middle of a run.
        dev.start()
        probe = f"probe-{time.time_ns()}"
        assert _dagster_storage_probe(dev.home, probe) == probe
        httpx.post(
            f"{dev.env['LENDING_SANDBOX_URL']}/_admin/faults",
            json={"fineract": {"latency_ms": 600_000}},
            timeout=10,
        ).raise_for_status()
        orphan = dev.launch_polling_run()
        dev.wait_for_status(orphan, {"STARTED"})
        postgres = dev.postmaster()
        dev.signal_group(signal.SIGKILL)
        assert postgres.is_running(), "PostgreSQL runs in its own session and outlives the crash"

        # Second start after the crash: same state, the orphan failed, the job not blocked.
        dev.start()
        assert dev.postmaster().pid == postgres.pid, "the orphaned server is reused, not doubled"
        assert _dagster_storage_probe(dev.home, None) == probe, "the same Dagster storage"
        assert dev.run_status(orphan) == "FAILURE", "a run left in flight by a crash is failed"
        assert dev.wait_for_status(dev.launch_polling_run(), {"SUCCESS", "FAILURE"}) == "SUCCESS"

        # Ctrl-C stops every process, the embedded PostgreSQL included.
        dev.signal_group(signal.SIGINT)
        _wait_until(lambda: not postgres.is_running(), STOP_BUDGET_SECONDS, "PostgreSQL stopping")
        _wait_until(
            lambda: not any(_up(port) for port in dev.ports.values()),
            STOP_BUDGET_SECONDS,
            "every port closing",
        )
        assert not (dev.home / "pg" / "postmaster.pid").exists()
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n--- lending dev output ---\n{dev.output()}") from None
    finally:
        if dev.process is not None and dev.process.poll() is None:
            dev.signal_group(signal.SIGINT)


def _dagster_storage_probe(home, probe: str | None) -> str:
    """Write (first start) or read (second start) a marker in Dagster's own key-value table."""
    from pgserver.utils import PostmasterInfo

    # Read the running server's address without taking a handle (a handle would keep it alive).
    info = PostmasterInfo.read_from_pgdata(home / "pg")
    engine = sa.create_engine(
        info.get_uri(database="dagster").replace("postgresql://", "postgresql+psycopg://"),
        poolclass=sa.pool.NullPool,
    )
    try:
        with engine.begin() as conn:
            if probe is not None:
                conn.execute(
                    sa.text("INSERT INTO kvs (key, value) VALUES ('lending-dev-probe', :v)"),
                    {"v": probe},
                )
            return conn.execute(
                sa.text("SELECT value FROM kvs WHERE key = 'lending-dev-probe'")
            ).scalar_one()
    finally:
        engine.dispose()
