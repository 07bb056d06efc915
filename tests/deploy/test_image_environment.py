"""The image's Python environment, built here the Dockerfile's way (no docker on this machine):
its build context, its `uv sync` commands and its manifest preparation, read from
deploy/Dockerfile itself, then the code location loaded and the receiver served under the
production ConfigMap, outside dev mode."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lending_pipelines.settings import PROJECT_ROOT
from tests.deploy.manifests import (
    config_maps,
    dockerfile_instructions,
    exec_form,
)

pytestmark = pytest.mark.slow(seconds=35)  # each of its 3 tests; one environment build

# Credentials of the right shape; nothing connects with them while loading.
FAKE_SECRETS = {
    "LENDING_DATABASE_URL": "postgresql+psycopg://lending:secret@db.invalid:5432/lending",
    "LENDING_ENCRYPTION_KEY": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    "LENDING_STRIPE_API_KEY": "sk_test_" + "x" * 24,
    "LENDING_TWILIO_AUTH_TOKEN": "t" * 32,
    "LENDING_MPESA_CALLBACK_TOKEN": "m" * 32,
    "LENDING_STRIPE_WEBHOOK_SECRET": "whsec_" + "s" * 24,
}


_OURS = ("LENDING_", "DAGSTER_", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTEST_")


def _uv() -> list[str]:
    """uv as `make test` runs it (`uv run` names its binary in $UV), else the Makefile's way."""
    if os.environ.get("UV"):
        return [os.environ["UV"]]
    if shutil.which("uv"):
        return [shutil.which("uv")]
    return ["python3.11", "-m", "uv"]


def _build_stage_runs() -> list[list[str]]:
    """The build stage's RUN commands as argv lists (each `&&` part on its own)."""
    instructions = dockerfile_instructions()
    (build,) = {i.stage for i in instructions if i.command == "FROM" and " AS build" in i.arguments}
    commands = []
    for instruction in instructions:
        if instruction.stage == build and instruction.command == "RUN":
            commands += [exec_form(part.strip()) for part in instruction.arguments.split("&&")]
    return commands


def _context(app: Path) -> None:
    """What the build stage copies from the context (COPY without --from)."""
    for instruction in dockerfile_instructions():
        if instruction.command != "COPY" or "--from=" in instruction.arguments:
            continue
        for source in instruction.arguments.split()[:-1]:
            path = PROJECT_ROOT / source
            if path.is_dir():
                shutil.copytree(
                    path,
                    app / source,
                    ignore=shutil.ignore_patterns("__pycache__", "target", "logs", "dbt_packages"),
                )
            else:
                shutil.copy2(path, app / source)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def image_env(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    app = tmp_path_factory.mktemp("image") / "app"
    app.mkdir()
    _context(app)
    venv = app / ".venv"
    # The machine's own environment (proxies, certificates, uv's cache) minus ours.
    build_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(_OURS)},
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
        "UV_PROJECT_ENVIRONMENT": str(venv),
    }
    for argv in _build_stage_runs():
        if argv[:2] == ["uv", "sync"]:
            argv = [*_uv(), *argv[1:]]
        elif argv[0].endswith("/python"):
            argv = [str(venv / "bin" / "python"), *argv[1:]]
        else:
            argv = [a.replace("/app/", f"{app}/") for a in argv]
        # The RUN's inline variable assignments (`NAME=value command`) become its environment.
        assignments = {}
        while argv and "=" in argv[0] and not argv[0].startswith(("-", "/")):
            name, _, value = argv.pop(0).partition("=")
            assignments[name] = value.replace("${DBT_DATABASE}", "lending")
        if argv[0] == "rm":
            continue
        result = subprocess.run(
            argv,
            cwd=app,
            env={**build_env, **assignments},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])
    runtime = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(app.parent),
        "LENDING_HOME": str(app.parent / "lending-home"),
        **config_maps()["lending-config"],
        **FAKE_SECRETS,
    }
    runtime["LENDING_HOME"] = str(app.parent / "lending-home")
    return app, runtime


def _run(app: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=app, env=env, capture_output=True, text=True, timeout=600)


def test_the_image_environment_has_no_dev_tooling_and_a_fresh_dbt_manifest(image_env):
    app, env = image_env
    python = str(app / ".venv" / "bin" / "python")
    for module in ("lending_dev", "pgserver", "pytest", "respx", "ruff", "hypothesis"):
        result = _run(app, env, python, "-c", f"import {module}")
        assert "ModuleNotFoundError" in result.stderr, module
    result = _run(app, env, python, "-c", "import dagster_k8s, lending_pipelines.cli")
    assert result.returncode == 0, result.stderr
    final_checks = [
        i.arguments
        for i in dockerfile_instructions()
        if i.command == "RUN" and "manifest_is_stale" in i.arguments
    ]
    (check,) = final_checks
    argv = exec_form(check)
    result = _run(app, env, python, *argv[1:])
    assert result.returncode == 0, ("the manifest would be parsed again at start", result.stderr)


def test_the_code_location_loads_outside_dev_mode_under_the_production_settings(image_env):
    app, env = image_env
    assert env["LENDING_DEV_MODE"] == "false"
    result = _run(
        app,
        env,
        str(app / ".venv" / "bin" / "dagster"),
        *("definitions", "validate", "-m", "lending_pipelines.definitions"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation successful for code location lending_pipelines.definitions" in (
        result.stdout + result.stderr
    )


def test_the_receiver_serves_its_health_route_on_every_address_of_the_pod(image_env):
    app, env = image_env
    port = _free_port()
    server = subprocess.Popen(
        [str(app / ".venv" / "bin" / "lending"), "webhooks"],
        cwd=app,
        env={**env, "LENDING_WEBHOOKS_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.5)
        assert response.status_code == 200 and response.json() == {"ok": True}
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert f"0.0.0.0:{port}" in output
    assert env["LENDING_MPESA_CALLBACK_TOKEN"] not in output
