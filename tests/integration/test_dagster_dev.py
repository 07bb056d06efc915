"""Plain `dagster dev` / `dg dev` from the repository: dev mode with the dev secrets of `make
dev`, or one clear message when the local partner services are not running; outside dev mode
the code server refuses to start without LENDING_DATABASE_URL."""

import json
import os
import subprocess
import sys

import pytest

from lending_dev import devenv
from lending_dev.sandbox.server import BackgroundServer, free_port
from lending_pipelines import devmode
from lending_pipelines.settings import PROJECT_ROOT, get_settings, reveal
from lending_pipelines.webhooks.app import build_app as build_receiver


def _code_server(env_extra: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    """Start the code location's gRPC server as `dagster dev` does; it exits if loading fails."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"LENDING_DATABASE_URL", "LENDING_DEV_MODE", "DAGSTER_IS_DEV_CLI"}
    }
    env.update(
        LENDING_HOME=str(tmp_path),
        LENDING_SANDBOX_URL=f"http://127.0.0.1:{free_port()}",
        LENDING_WEBHOOKS_URL=f"http://127.0.0.1:{free_port()}",
        **env_extra,
    )
    command = [sys.executable, "-m", "dagster", "api", "grpc", "--port", str(free_port())]
    return subprocess.run(
        [*command, "-m", "lending_pipelines.definitions"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_plain_dagster_dev_without_the_local_services_fails_to_load_saying_to_run_make_dev(
    tmp_path,
):
    result = _code_server({"DAGSTER_IS_DEV_CLI": "1"}, tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Run `make dev` instead" in output, output[-3000:]
    assert "partner sandbox" in output and "callback receiver" in output
    assert not (tmp_path / "pg").exists(), "nothing is started before the message"


def test_a_code_server_outside_dev_mode_refuses_to_start_without_a_database_url(tmp_path):
    result = _code_server({}, tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "LENDING_DATABASE_URL is not set" in output, output[-3000:]
    assert not (tmp_path / "pg").exists(), "no embedded PostgreSQL outside dev mode"
    assert not (tmp_path / "dev-secrets.json").exists(), "no dev secrets outside dev mode"


@pytest.fixture
def receiver_server(db_url):
    server = BackgroundServer(
        build_receiver(database_url=db_url, mpesa_token="t" * 32), health_path="/health"
    ).start()
    yield server
    server.stop()


def test_plain_dagster_dev_with_the_local_services_running_gets_the_dev_secrets_of_make_dev(
    tmp_path, monkeypatch, sandbox_server, receiver_server
):
    monkeypatch.setattr(os, "environ", {**os.environ})  # restored with everything set below
    for name in (
        "LENDING_DEV_MODE",
        "LENDING_DATABASE_URL",
        "LENDING_ENCRYPTION_KEY",
        "LENDING_MPESA_CALLBACK_TOKEN",
        "LENDING_STRIPE_API_KEY",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        DAGSTER_IS_DEV_CLI="1",
        LENDING_HOME=str(tmp_path),
        LENDING_SANDBOX_URL=sandbox_server.base_url,
        LENDING_WEBHOOKS_URL=receiver_server.base_url,
    )
    monkeypatch.setattr(sys, "argv", ["dagster", "api", "grpc", "-m", "x"])
    get_settings.cache_clear()
    try:
        settings = devmode.prepare_code_location()
        stored = json.loads((tmp_path / "dev-secrets.json").read_text())
        assert settings.dev_mode is True
        assert os.environ["LENDING_DEV_MODE"] == "true", "run workers inherit dev mode"
        assert os.environ["LENDING_ENCRYPTION_KEY"] == stored["LENDING_ENCRYPTION_KEY"]
        assert reveal(settings.mpesa_callback_token) == stored["LENDING_MPESA_CALLBACK_TOKEN"]
        assert (
            os.environ["LENDING_STRIPE_API_KEY"] == devenv.DEV_ENVIRONMENT["LENDING_STRIPE_API_KEY"]
        )
    finally:
        get_settings.cache_clear()
