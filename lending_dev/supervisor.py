"""`lending dev`, `lending sandbox` and `lending seed`: the local system, supervised.

`lending dev` takes the one-per-LENDING_HOME lock, migrates and seeds the database (the
embedded PostgreSQL unless LENDING_DATABASE_URL is set), then runs the partner sandbox, the
callback receiver and `dagster dev` as children and stops them all together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from lending_pipelines.settings import PROJECT_ROOT, Settings, get_settings

from .devenv import enter_dev_mode, fill_dev_secrets

DEV_LOCK_FILE = "dev.lock"


def _operational_url() -> str:
    from lending_pipelines.db.server import operational_url

    return operational_url(get_settings())


def serve_sandbox() -> int:
    """The partner-API sandbox on LENDING_SANDBOX_URL's host and port."""
    import uvicorn

    from .sandbox.app import build_app

    url = urlsplit(get_settings().sandbox_url)
    uvicorn.run(
        build_app(), host=url.hostname or "127.0.0.1", port=url.port or 80, log_level="info"
    )
    return 0


def seed_demo(faults: bool = False) -> int:
    """Migrate, then load the idempotent demo data (and break it on purpose with `faults`)."""
    from lending_pipelines.db import migrate
    from lending_pipelines.db.engine import get_engine

    from .seed import seed_all
    from .seed.loans import inject_demo_faults

    fill_dev_secrets()  # demo partners' credentials are encrypted with the dev key
    url = _operational_url()
    migrate.upgrade(url)
    with get_engine(url).begin() as conn:
        seeded = seed_all(conn, get_settings())
        injected = inject_demo_faults(conn, get_settings()) if faults else []
    print("seeded:", ", ".join(seeded) or "(nothing to seed)")
    for fault in injected:
        print("fault injected:", fault)
    return 0


DEV_LOCK_FILE = "dev.lock"


def _take_dev_lock(settings: Settings):
    """One `lending dev` per LENDING_HOME: an exclusive lock on LENDING_HOME/dev.lock, held by
    this process and inherited by its children (the kernel drops it when the last one dies, so
    a crash never leaves it behind). Returns the open file, or None when it is taken."""
    import fcntl

    settings.home.mkdir(parents=True, exist_ok=True)
    lock = open(settings.home / DEV_LOCK_FILE, "a+")  # held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def run_dev(port: int) -> int:
    from lending_pipelines.db.server import dagster_storage_url
    from lending_pipelines.instance import (
        apply_pool_limits,
        fail_orphaned_runs,
        write_instance_config,
    )

    env = enter_dev_mode()
    settings = get_settings()
    lock = _take_dev_lock(settings)
    if lock is None:
        print(
            f"lending dev: another `lending dev` is running on LENDING_HOME={settings.home}; "
            "stop it first (Ctrl-C in its terminal)",
            file=sys.stderr,
        )
        return 1
    where = settings.pg_data_dir if not settings.database_url else "LENDING_DATABASE_URL"
    print(f"lending dev: database {where}")
    seed_demo()  # migrates, then seeds; this process holds the embedded server open
    env["LENDING_DAGSTER_STORAGE_URL"] = os.environ["LENDING_DAGSTER_STORAGE_URL"] = (
        dagster_storage_url(settings)
    )
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    write_instance_config(settings.dagster_home)
    # Dagster is not running on this home yet (we hold the lock): a run still in flight was
    # left by a crash and would block its job for ever through the one-at-a-time tag.
    orphaned = fail_orphaned_runs(settings.dagster_home)
    if orphaned:
        print(f"lending dev: marked {len(orphaned)} run(s) left in flight by a crash as failed")
    apply_pool_limits(settings.dagster_home)

    bin_dir = Path(sys.executable).parent
    commands = {
        "sandbox": [sys.executable, "-m", "lending_pipelines.cli", "sandbox"],
        # In dev the receiver's public URL is its local address (no proxy): bind its port.
        "webhooks": [
            *[sys.executable, "-m", "lending_pipelines.cli", "webhooks"],
            *["--host", "127.0.0.1"],
            *["--port", str(urlsplit(settings.webhooks_url).port or settings.webhooks_port)],
        ],
        "dagster": [str(bin_dir / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
    }
    children = {
        name: subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, pass_fds=(lock.fileno(),))
        for name, cmd in commands.items()
    }
    print(
        f"lending dev: sandbox {settings.sandbox_url}, receiver {settings.webhooks_url}, "
        f"Dagster UI http://127.0.0.1:{port} (Ctrl-C stops everything)"
    )
    stopping = False
    interrupted = False

    def stop(signum, frame) -> None:
        nonlocal stopping, interrupted
        stopping = True
        interrupted = interrupted or signum == signal.SIGINT

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"lending dev: {name} exited with code {child.returncode}; stopping")
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.5)
    # Ctrl-C reaches the whole process group: the children are stopping already, and a second
    # SIGINT would interrupt their exit (the embedded server's holder bookkeeping included).
    _stop_children(children.values(), signalled_already=interrupted)
    return exit_code


def _stop_children(children, grace_seconds: float = 15.0, signalled_already=False) -> None:
    children = list(children)
    if signalled_already:
        _wait_for(children, grace_seconds)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for child in _wait_for(children, grace_seconds):
        child.kill()
        child.wait()


def _wait_for(children, seconds: float) -> list:
    """Wait up to `seconds` for every child to exit; the ones still running."""
    deadline = time.monotonic() + seconds
    running = []
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            running.append(child)
    return running
