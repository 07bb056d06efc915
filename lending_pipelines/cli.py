"""The `lending` command: run the system locally and manage its database.

lending dev                 database + migrations + seed + sandbox + receiver + dagster dev
lending sandbox             the partner-API sandbox (LENDING_SANDBOX_URL's port)
(dev, sandbox and seed are dev tooling from the lending_dev package, not in the wheel)
lending webhooks            the callback receiver (--host/--port, plain HTTP behind a TLS proxy)
lending db upgrade|downgrade|current|url
lending seed                idempotent demo data
lending secrets rotate      re-encrypt stored partner secrets with the first encryption key
lending pools apply         store the concurrency pool limits in the Dagster instance
lending credit validate-order  would this order be accepted? (--retailer, --payment-mode,
                            --amount in major units, --currency)
"""

from __future__ import annotations

import argparse
import os
import sys

from .settings import SettingsError, get_settings

DAGSTER_PORT = 3000


def _dev_tooling(command: str):
    """The dev tooling (`lending_dev.supervisor`), or None after saying why it is missing: it is
    not in the wheel, so a production image has no sandbox, seeds or `lending dev`."""
    try:
        from lending_dev import supervisor
    except ModuleNotFoundError as exc:
        if exc.name != "lending_dev" and not (exc.name or "").startswith("lending_dev."):
            raise
        print(
            f"lending {command}: the dev tooling (the lending_dev package) is not installed; "
            "this is a production install. Run it from a source checkout (`make dev`).",
            file=sys.stderr,
        )
        return None
    return supervisor


def cmd_dev(args: argparse.Namespace) -> int:
    supervisor = _dev_tooling("dev")
    return 1 if supervisor is None else supervisor.run_dev(args.port)


def cmd_sandbox(args: argparse.Namespace) -> int:
    supervisor = _dev_tooling("sandbox")
    return 1 if supervisor is None else supervisor.serve_sandbox()


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
    supervisor = _dev_tooling("seed")
    return 1 if supervisor is None else supervisor.seed_demo(faults=args.faults)


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


def cmd_credit(args: argparse.Namespace) -> int:
    """Exit 0: the order would be accepted; 1: refused (the rule and the numbers); 2: bad input."""
    from .db.credit.manual import CreditOperationError
    from .db.engine import get_engine
    from .domain.currency import UnknownCurrencyError
    from .workflows.credit.validation import to_minor, validate_retailer_order

    try:
        amount = to_minor(args.amount, args.currency)
        with get_engine(_operational_url()).connect() as conn:
            decision = validate_retailer_order(
                conn,
                args.retailer,
                payment_mode=args.payment_mode,
                amount=amount,
                currency=args.currency,
                tz=get_settings().credit_timezone,
            )
    except (CreditOperationError, UnknownCurrencyError) as exc:
        print(f"lending credit validate-order: {exc}", file=sys.stderr)
        return 2
    verdict = "ALLOWED" if decision.allowed else f"REFUSED ({decision.rule})"
    print(f"{verdict}: {decision.message}")
    return 0 if decision.allowed else 1


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
    credit = sub.add_parser("credit", help="retailer credit operations")
    credit.add_argument("action", choices=["validate-order"])
    credit.add_argument("--retailer", required=True, help="retailer id")
    credit.add_argument("--payment-mode", required=True, choices=["CREDIT", "COD"])
    credit.add_argument("--amount", required=True, help="order amount in major units (1200.50)")
    credit.add_argument("--currency", default="INR")
    credit.set_defaults(func=cmd_credit)
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
