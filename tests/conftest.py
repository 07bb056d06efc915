"""Shared fixtures: a real PostgreSQL database per test session and the partner-API sandbox.

The database is a fresh one (`lending_test_<random>`) on the embedded server, or on the server
LENDING_DATABASE_URL names, migrated to every head; each test using `db` starts from empty
tables. The sandbox runs in a thread on a free port; each test using `sandbox` starts from its
seeded state with no faults.
"""

from __future__ import annotations

import os

# The tests are a dev-mode user: the embedded PostgreSQL may start (set before any settings load).
os.environ["LENDING_DEV_MODE"] = "true"

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from lending_dev.sandbox.app import build_app
from lending_dev.sandbox.server import BackgroundServer
from lending_pipelines.db import migrate
from lending_pipelines.db.meta import SCHEMA
from lending_pipelines.db.server import create_admin_engine, drop_database, server_url
from lending_pipelines.resources.database import DatabaseResource
from lending_pipelines.settings import PROJECT_ROOT, Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


MIGRATIONS_DIR = Path(migrate.__file__).parent / "migrations"
TEMPLATE_LOCK = 727099  # held while a template database is checked, built or copied
TEMPLATE_PREFIX = "lending_template_"


def _template_name() -> str:
    """Named after the migrations' content: a changed migration builds a new template."""
    digest = hashlib.sha256()
    for path in sorted(MIGRATIONS_DIR.rglob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return f"{TEMPLATE_PREFIX}{digest.hexdigest()[:12]}"


def create_migrated_database(url: URL) -> None:
    """`url`'s database as a copy of a template migrated once: xdist workers and later sessions
    copy it (a file copy on the server) instead of each running every migration."""
    template = _template_name()
    admin = create_admin_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": TEMPLATE_LOCK})
            try:
                known = set(
                    conn.execute(
                        sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                        {"p": f"{TEMPLATE_PREFIX}%"},
                    ).scalars()
                )
                if template not in known:
                    for stale in known:  # other migrations' templates, or a build cut short
                        conn.execute(sa.text(f'DROP DATABASE "{stale}" WITH (FORCE)'))
                    building = f"{template}_building"
                    conn.execute(sa.text(f'CREATE DATABASE "{building}"'))
                    migrate.upgrade(url.set(database=building).render_as_string(False))
                    conn.execute(sa.text(f'ALTER DATABASE "{building}" RENAME TO "{template}"'))
                conn.execute(sa.text(f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"'))
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": TEMPLATE_LOCK})
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def db_url(settings: Settings) -> Iterator[str]:
    url = server_url(settings).set(database=f"lending_test_{uuid.uuid4().hex[:10]}")
    create_migrated_database(url)
    rendered = url.render_as_string(hide_password=False)
    yield rendered
    from lending_pipelines.db.engine import dispose_engines

    dispose_engines()
    drop_database(make_url(rendered))


@pytest.fixture
def server_tmp_path() -> Iterator[Path]:
    """A scratch directory for a test that starts its own embedded PostgreSQL.

    Not under pytest's temp root: that root is private (0700), and any other pytest session on
    the machine closes it again when it starts, while the server (run as the `pgserver` user
    when the tests run as root) must reach its data directory through it."""
    base = PROJECT_ROOT / ".lending" / "test-servers"
    base.mkdir(parents=True, exist_ok=True)
    path = base / uuid.uuid4().hex[:8]
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


def _tables(conn: sa.Connection) -> list[str]:
    return list(
        conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = :schema "
                "AND tablename <> 'alembic_version' ORDER BY tablename"
            ),
            {"schema": SCHEMA},
        ).scalars()
    )


def truncate_all(engine: sa.Engine) -> None:
    """Every operational table emptied and every sequence of the schema back to 1.

    Only the tables holding rows are emptied, with DELETE under `session_replication_role =
    replica` (no foreign-key or trigger work): a TRUNCATE of every table rewrites ~60 tables'
    files and took 0.6-1 s per test on the 2-core machine. Without superuser rights (an external
    test server), the tables are truncated instead.
    """
    with engine.begin() as conn:
        tables = _tables(conn)
        if not tables:
            return
        holding = conn.execute(
            sa.text(
                " UNION ALL ".join(
                    f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {SCHEMA}.\"{name}\")"
                    for name in tables
                )
            )
        ).scalars()
        holding = list(holding)
        superuser = conn.execute(
            sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar()
        if superuser:
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            for name in holding:
                conn.execute(sa.text(f'DELETE FROM {SCHEMA}."{name}"'))
        elif holding:
            names = ", ".join(f'{SCHEMA}."{name}"' for name in holding)
            conn.execute(sa.text(f"TRUNCATE {names} CASCADE"))
        conn.execute(
            sa.text(
                "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname = :schema"
            ),
            {"schema": SCHEMA},
        )


@pytest.fixture
def db(engine: sa.Engine) -> sa.Engine:
    """The session database with every operational table emptied."""
    truncate_all(engine)
    return engine


@pytest.fixture
def database(db: sa.Engine, db_url: str) -> DatabaseResource:
    return DatabaseResource(url=db_url)


@dataclass
class SandboxHandle:
    base_url: str
    admin: httpx.Client

    def url(self, provider: str) -> str:
        return f"{self.base_url}/{provider}"

    def set_faults(self, faults: dict) -> None:
        self.admin.post("/_admin/faults", json=faults).raise_for_status()

    def clear_faults(self) -> None:
        self.admin.delete("/_admin/faults").raise_for_status()

    def state(self, provider: str) -> dict:
        response = self.admin.get(f"/_admin/{provider}")
        response.raise_for_status()
        return response.json()

    def configure(self, provider: str, body: dict) -> None:
        self.admin.post(f"/_admin/{provider}/configure", json=body).raise_for_status()

    def reset(self) -> None:
        self.admin.post("/_admin/reset").raise_for_status()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[BackgroundServer]:
    server = BackgroundServer(build_app(faults={})).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: BackgroundServer) -> Iterator[SandboxHandle]:
    with httpx.Client(base_url=sandbox_server.base_url, timeout=10) as admin:
        handle = SandboxHandle(sandbox_server.base_url, admin)
        handle.reset()
        yield handle
        handle.clear_faults()


DEFAULT_SLOW_SECONDS = 20


def _slow_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("slow")
    return marker.kwargs.get("seconds", DEFAULT_SLOW_SECONDS) if marker else 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, start every worker on its share of the slow tests.

    `--dist worksteal` hands each worker an even, contiguous share of the collection and lets an
    idle worker steal from the end of another's queue. A slow test (a whole `make dev`, a built
    image environment, 20 overlapping payout runs) left at the end of a share would run last and
    alone; at the front of the shares they run side by side from the start, and the short tests
    even out the end. A module's slow tests stay together (they may share a module fixture);
    modules go, heaviest first (`slow(seconds=...)`, measured), to the lightest share.
    """
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    slow = [item for item in items if _slow_seconds(item)]
    if workers < 2 or not slow:
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in slow:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for group in sorted(modules.values(), key=lambda g: -sum(map(_slow_seconds, g))):
        lightest = loads.index(min(loads))
        shares[lightest].extend(group)
        loads[lightest] += sum(map(_slow_seconds, group))
    fast = [item for item in items if not _slow_seconds(item)]
    remaining = len(items)
    for index, share in enumerate(shares):
        take = max(0, remaining // (workers - index) - len(share))  # xdist's first share sizes
        share.extend(fast[:take])
        del fast[:take]
        remaining -= len(share)
    shares[-1].extend(fast)
    items[:] = [item for share in shares for item in share]
