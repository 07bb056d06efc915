"""`make dev` brings up the whole system, stops it on Ctrl-C, and keeps its state for next time.

Runs `lending dev` (what `make dev` runs once dependencies are installed) with its own
LENDING_HOME and free ports, exactly as a developer would, and talks to it over HTTP.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa

from lending_pipelines.sandbox.server import free_port
from lending_pipelines.settings import PROJECT_ROOT

STARTUP_BUDGET_SECONDS = 90

LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _wait_for(url: str, deadline: float) -> httpx.Response:
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in time")


def _up(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_make_dev_serves_the_ui_loads_the_location_and_restarts_with_the_same_state(tmp_path):
    home = tmp_path / "home"
    ports = {"dagster": free_port(), "sandbox": free_port(), "webhooks": free_port()}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"LENDING_DATABASE_URL", "DAGSTER_HOME"}
    }
    env.update(
        LENDING_HOME=str(home),
        LENDING_SANDBOX_URL=f"http://127.0.0.1:{ports['sandbox']}",
        LENDING_WEBHOOKS_URL=f"http://127.0.0.1:{ports['webhooks']}",
    )
    command = [
        sys.executable,
        "-m",
        "lending_pipelines.cli",
        "dev",
        "--port",
        str(ports["dagster"]),
    ]

    log_path = tmp_path / "dev.log"

    def start_and_check(probe: str | None) -> str:
        log = log_path.open("ab")
        process = subprocess.Popen(
            command,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + STARTUP_BUDGET_SECONDS
            _wait_for(f"http://127.0.0.1:{ports['dagster']}/server_info", deadline)
            _wait_for(f"{env['LENDING_SANDBOX_URL']}/_admin/health", deadline)
            _wait_for(f"{env['LENDING_WEBHOOKS_URL']}/health", deadline)
            workspace = httpx.post(
                f"http://127.0.0.1:{ports['dagster']}/graphql",
                json={"query": LOCATION_QUERY},
                timeout=30,
            ).json()["data"]["workspaceOrError"]
            entries = {e["name"]: e["locationOrLoadError"] for e in workspace["locationEntries"]}
            assert entries["lending_pipelines"]["__typename"] == "RepositoryLocation", entries
            storage = _dagster_storage_probe(home, probe)
        except AssertionError as failure:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise AssertionError(f"{failure}\n--- lending dev output ---\n{tail}") from None
        finally:
            # Ctrl-C in a terminal signals the whole foreground process group.
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=60)
        return storage

    probe = f"probe-{time.time_ns()}"
    assert start_and_check(probe) == probe
    assert not any(_up(port) for port in ports.values()), "Ctrl-C must stop every process"
    assert not (home / "pg" / "postmaster.pid").exists(), "the embedded server must stop too"
    assert start_and_check(None) == probe, "the second start must reuse the same Dagster storage"


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
