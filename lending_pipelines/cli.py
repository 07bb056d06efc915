"""The `lending` command: run the system locally and manage its database.

lending dev                 database + migrations + seed + sandbox + receiver + dagster dev
lending sandbox             the partner-API sandbox (LENDING_SANDBOX_URL's port)
lending webhooks            the callback receiver (--host/--port, plain HTTP behind a TLS proxy)
lending db upgrade|downgrade|current|url
lending seed                idempotent demo data
lending secrets rotate      re-encrypt stored partner secrets with the first encryption key
lending pools apply         store the concurrency pool limits in the Dagster instance
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from .devmode import enter_dev_mode, fill_dev_secrets
from .settings import PROJECT_ROOT, Settings, SettingsError, get_settings

DAGSTER_PORT = 3000


def _port(url: str) -> int:
    return urlsplit(url).port or 80


def _serve(app, url: str) -> None:
    import uvicorn

    uvicorn.run(app, host=urlsplit(url).hostname or "127.0.0.1", port=_port(url), log_level="info")


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox.app import build_app

    _serve(build_app(), get_settings().sandbox_url)
    return 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Bind --host/--port (default LENDING_WEBHOOKS_HOST/PORT), never the public URL's host:
    the public URL is https on the proxy that terminates TLS and forwards here."""
    import logging

    import uvicorn

    from .webhooks.app import build_app
    from .webhooks.config import ReceiverConfigError
    from .webhooks.serve import receiver_config

    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        app = build_app()
    except ReceiverConfigError as exc:
        print(f"lending webhooks: {exc}", file=sys.stderr)
        return 2
    config = receiver_config(
        app,
        args.host or settings.webhooks_host,
        args.port or settings.webhooks_port,
        request_timeout_seconds=settings.webhooks_request_timeout_seconds,
        max_connections=settings.webhooks_max_connections,
    )
    uvicorn.Server(config).run()
    return 0


def _operational_url() -> str:
    from .db.server import operational_url

    return operational_url(get_settings())


def cmd_db(args: argparse.Namespace) -> int:
    from .db import migrate

    url = _operational_url()
    if args.action == "upgrade":
        migrate.upgrade(url, args.target or "heads")
    elif args.action == "downgrade":
        migrate.downgrade(url, args.target or "base")
    elif args.action == "url":
        from sqlalchemy.engine import make_url

        print(make_url(url).render_as_string(hide_password=True))
        return 0
    revisions = sorted(migrate.current_revisions(url))
    print("current revisions:", ", ".join(revisions) or "(none)")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from .db import migrate
    from .db.engine import get_engine
    from .seed import seed_all
    from .seed.loans import inject_demo_faults

    fill_dev_secrets()  # demo partners' credentials are encrypted with the dev key
    url = _operational_url()
    migrate.upgrade(url)
    with get_engine(url).begin() as conn:
        seeded = seed_all(conn, get_settings())
        faults = inject_demo_faults(conn, get_settings()) if getattr(args, "faults", False) else []
    print("seeded:", ", ".join(seeded) or "(nothing to seed)")
    for fault in faults:
        print("fault injected:", fault)
    return 0


def cmd_pools(args: argparse.Namespace) -> int:
    from .instance import DEFAULT_POOL_LIMIT, apply_pool_limits

    for pool, limit in apply_pool_limits().items():
        print(f"pool {pool}: {limit} step(s) at once")
    print(f"any other pool: {DEFAULT_POOL_LIMIT} (concurrency.pools.default_limit)")
    return 0


def cmd_secrets(args: argparse.Namespace) -> int:
    from .crypto import EncryptionKeyError, SecretBox
    from .db.audit import record_audit
    from .db.engine import get_engine
    from .db.secrets import rotate_partner_secrets

    try:
        box = SecretBox.from_settings(get_settings())
        with get_engine(_operational_url()).begin() as conn:
            rotated = rotate_partner_secrets(conn, box)
            record_audit(
                conn,
                actor=args.actor,
                action="secrets.rotate",
                entity="partners",
                entity_id="*",
                new_value={"partners": rotated, "keys_configured": box.key_count},
                reason="re-encrypt partner secrets with the first LENDING_ENCRYPTION_KEY",
            )
    except EncryptionKeyError as exc:
        print(f"lending secrets rotate: {exc}; nothing was changed", file=sys.stderr)
        return 1
    print(f"re-encrypted the secrets of {rotated} partner(s) with the first key")
    if box.key_count > 1:
        print("every secret now reads with the first key alone: the old keys can be dropped")
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


def cmd_dev(args: argparse.Namespace) -> int:
    from .db.server import dagster_storage_url
    from .instance import apply_pool_limits, fail_orphaned_runs, write_instance_config

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
    cmd_seed(args)  # migrates, then seeds; this process holds the embedded server open
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
        "dagster": [str(bin_dir / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(args.port)],
    }
    children = {
        name: subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, pass_fds=(lock.fileno(),))
        for name, cmd in commands.items()
    }
    print(
        f"lending dev: sandbox {settings.sandbox_url}, receiver {settings.webhooks_url}, "
        f"Dagster UI http://127.0.0.1:{args.port} (Ctrl-C stops everything)"
    )
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

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
    _stop_children(children.values())
    return exit_code


def _stop_children(children, grace_seconds: float = 15.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="lending", description=__doc__.split("\n")[0])
    sub = root.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run everything locally")
    dev.add_argument("--port", type=int, default=DAGSTER_PORT)
    dev.set_defaults(func=cmd_dev)
    sub.add_parser("sandbox", help="run the partner-API sandbox").set_defaults(func=cmd_sandbox)
    webhooks = sub.add_parser("webhooks", help="run the callback receiver (plain HTTP)")
    webhooks.add_argument("--host", help="bind address (default LENDING_WEBHOOKS_HOST)")
    webhooks.add_argument("--port", type=int, help="bind port (default LENDING_WEBHOOKS_PORT)")
    webhooks.set_defaults(func=cmd_webhooks)
    seed = sub.add_parser("seed", help="load idempotent demo data")
    seed.add_argument(
        "--faults", action="store_true", help="then break the demo on purpose (see README)"
    )
    seed.set_defaults(func=cmd_seed)
    pools = sub.add_parser("pools", help="store the concurrency pool limits in $DAGSTER_HOME")
    pools.add_argument("action", choices=["apply"])
    pools.set_defaults(func=cmd_pools)
    secrets_ = sub.add_parser("secrets", help="manage encrypted partner secrets")
    secrets_.add_argument("action", choices=["rotate"])
    secrets_.add_argument("--actor", default=os.environ.get("USER") or "operator")
    secrets_.set_defaults(func=cmd_secrets)
    db = sub.add_parser("db", help="manage the operational database")
    db.add_argument("action", choices=["upgrade", "downgrade", "current", "url"])
    db.add_argument("target", nargs="?", help="revision (default: heads / base)")
    db.set_defaults(func=cmd_db)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        get_settings()
        return args.func(args)
    except SettingsError as exc:
        print(f"lending {args.command}: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
