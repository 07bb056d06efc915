"""The embedded PostgreSQL: only in dev mode, safe in any checkout path, and stopped by its
last live holder even after another holder was killed."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from pgserver.utils import PostmasterInfo

from lending_pipelines.db.server import SERVER_SETTINGS, server_url
from lending_pipelines.settings import PROJECT_ROOT, Settings, SettingsError


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any database or dev-mode configuration."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"LENDING_DATABASE_URL", "LENDING_DEV_MODE", "DAGSTER_IS_DEV_CLI"}
    }
    env.update(extra)
    return env


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.2)


def test_without_a_database_url_outside_dev_mode_nothing_embedded_starts_and_the_error_names_it(
    tmp_path,
):
    settings = Settings.from_env({"LENDING_HOME": str(tmp_path), "LENDING_DEV_MODE": "false"})
    with pytest.raises(SettingsError, match="LENDING_DATABASE_URL"):
        server_url(settings)
    assert not (tmp_path / "pg").exists(), "no embedded data directory may be created"


def test_the_callback_receiver_outside_dev_mode_refuses_to_start_without_a_database_url(tmp_path):
    env = _clean_env(LENDING_HOME=str(tmp_path), LENDING_MPESA_CALLBACK_TOKEN="t" * 32)
    result = subprocess.run(
        [sys.executable, "-m", "lending_pipelines.cli", "webhooks"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "LENDING_DATABASE_URL" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "pg").exists(), "no embedded data directory may be created"


HOLD_SERVER = """
import sys, time
from lending_pipelines.db.server import operational_url
from lending_pipelines.settings import get_settings
operational_url(get_settings())
print("ready", flush=True)
if sys.argv[1] == "hold":
    time.sleep(600)
"""


def test_a_holder_killed_by_sigkill_does_not_keep_the_embedded_server_running_forever(
    server_tmp_path,
):
    tmp_path = server_tmp_path
    env = _clean_env(LENDING_HOME=str(tmp_path), LENDING_DEV_MODE="true")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SERVER, "hold"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        postmaster = PostmasterInfo.read_from_pgdata(tmp_path / "pg")
        assert postmaster is not None and postmaster.is_running()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert postmaster.is_running(), "the server outlives a crashed holder (its own session)"

    # The next user reuses the orphaned server and, as its last live holder, stops it on exit.
    subprocess.run(
        [sys.executable, "-c", HOLD_SERVER, "exit"], env=env, cwd=PROJECT_ROOT, check=True
    )
    _wait_until(lambda: not postmaster.is_running(), 60, "the embedded server stopping")
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


CONCURRENT_FIRST_USE = """
from concurrent.futures import ThreadPoolExecutor
from lending_pipelines.db.server import embedded_server
from lending_pipelines.settings import get_settings
with ThreadPoolExecutor(8) as pool:
    servers = list(pool.map(lambda _: embedded_server(get_settings()), range(16)))
print(len({id(server) for server in servers}), flush=True)
"""


def test_threads_of_one_process_starting_the_embedded_server_at_once_do_not_collide(
    server_tmp_path,
):
    # The code server evaluates sensors in threads: their first database use comes at once.
    env = _clean_env(LENDING_HOME=str(server_tmp_path), LENDING_DEV_MODE="true")
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_FIRST_USE],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "1", "one server handle per process"


def _copy_checkout(destination: Path) -> None:
    ignored = shutil.ignore_patterns(".venv", ".lending", ".git", "__pycache__", "target", "logs")
    shutil.copytree(PROJECT_ROOT, destination, ignore=ignored)


@pytest.mark.slow(seconds=60)
def test_a_checkout_in_a_long_path_with_a_space_runs_against_the_embedded_server(
    server_tmp_path,
):
    tmp_path = server_tmp_path
    checkout = tmp_path / "my projects" / ("a-rather-long-directory-name-" * 4) / "lending"
    assert len(str(checkout / ".lending" / "pg" / ".s.PGSQL.5432")) > 107
    _copy_checkout(checkout)
    env = _clean_env(LENDING_DEV_MODE="true")
    env.pop("LENDING_HOME", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/integration/test_instance.py",
            "tests/integration/test_database.py",
            "-q",
            "-n0",  # one process: the outer suite's workers already use the cores
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",  # pytest prunes the shared temp root
        ],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (checkout / ".lending" / "pg" / "PG_VERSION").exists(), "the copy's own server ran"
    assert not (checkout / ".lending" / "pg" / "postmaster.pid").exists(), "and stopped"


def test_the_embedded_server_runs_with_the_memory_and_checkpoint_settings_it_needs(engine):
    # Applied once per data directory; the session's server was started by this test session.
    with engine.connect() as conn:
        actual = {
            name: conn.execute(sa.text("SELECT current_setting(:n)"), {"n": name}).scalar()
            for name in SERVER_SETTINGS
        }
    assert (
        actual
        == SERVER_SETTINGS
        == {
            "max_connections": "300",
            "shared_buffers": "1GB",
            "max_wal_size": "4GB",
        }
    )
