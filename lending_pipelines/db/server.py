"""Where the databases live: an external server (LENDING_DATABASE_URL) or the embedded one.

The embedded PostgreSQL (from `pgserver`, in LENDING_HOME/pg) exists only in dev mode
(LENDING_DEV_MODE: `make dev`, `make test`, the tests, `dagster dev` / `dg dev` from the
repository); anywhere else a missing LENDING_DATABASE_URL is a start-up error naming it.

pgserver keeps a list of the processes holding a handle on the server and stops it when the last
one exits, so `make dev` and test sessions stop what they started. Two things are fixed here:
a holder killed by SIGKILL stays on that list for ever (so nobody would stop the server again),
and pgserver puts the unix socket in the data directory, whose path may hold a space (split by
pg_ctl's option string) or exceed the 107-byte socket path limit.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from ..settings import Settings, SettingsError, reveal

log = logging.getLogger(__name__)

OPERATIONAL_DATABASE = "lending"
DAGSTER_DATABASE = "dagster"
# Set once in the life of a data directory (ALTER SYSTEM, one restart), as PostgreSQL displays
# them. max_connections: Dagster (webserver, daemon, run and step processes), tests and the
# receiver share the server. shared_buffers and max_wal_size: PostgreSQL's defaults (128MB, 1GB)
# are sized for small machines; at 1,000,000 loans a payment file touches ~100,000 installment
# pages and writes ~1 GB of WAL, so the defaults evict what the posting's next statement reads
# again and checkpoint in the middle of every file ("checkpoints are occurring too frequently").
SERVER_SETTINGS = {"max_connections": "300", "shared_buffers": "1GB", "max_wal_size": "4GB"}
# Room for "/lending-pg-<12 hex>/.s.PGSQL.5432" under the base within the 107-byte limit.
_SOCKET_BASE_MAX_LENGTH = 70
_pruned_at_exit: set[Path] = set()
# pgserver's inter-process lock (fasteners) is not safe between threads of one process, and the
# code server evaluates sensors in threads: their first uses of the server come at once.
_start_lock = threading.RLock()


def embedded_server(settings: Settings):
    """Start or reuse the embedded PostgreSQL server under LENDING_HOME/pg (dev mode only)."""
    with _start_lock:
        return _embedded_server(settings)


def _embedded_server(settings: Settings):
    if not settings.dev_mode:
        raise SettingsError(
            "LENDING_DATABASE_URL is not set: outside dev mode (LENDING_DEV_MODE, set by "
            "`make dev` and the tests) no embedded PostgreSQL is started; set it to the "
            "operational database's URL"
        )
    import pgserver  # imported lazily: not needed when an external server is configured

    patch_pgserver()
    settings.home.mkdir(parents=True, exist_ok=True)
    pgdata = settings.pg_data_dir.resolve()
    pgdata.mkdir(exist_ok=True)
    forget_dead_holders(pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    if pgdata not in _pruned_at_exit:
        # atexit runs last-registered first: this runs before pgserver's own cleanup, so a
        # holder that died meanwhile does not stop this process from stopping the server.
        atexit.register(forget_dead_holders, pgdata)
        _pruned_at_exit.add(pgdata)
    _ensure_server_settings(server)
    return server


def patch_pgserver() -> None:
    """pgserver looks these up in its modules when it starts and stops a server."""
    from pgserver import postgres_server

    postgres_server.find_suitable_socket_dir = socket_dir_for
    postgres_server.DiskList.put = _put_holders_atomically


def _put_holders_atomically(holders, values: list[int]) -> None:
    """pgserver's holder list, written whole or not at all: its own write truncates the file
    first, so a Ctrl-C arriving during a holder's exit left it empty and nobody could stop the
    server (every later reader failed to parse it)."""
    temporary = holders.path.with_name(f"{holders.path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(values))
    os.replace(temporary, holders.path)


def _holder_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def forget_dead_holders(pgdata: Path) -> list[int]:
    """Drop the processes that no longer exist from pgserver's list of server holders.

    The list lives in pgdata/.handle_pids.json and is changed under pgserver's own lock, as
    pgserver does. Returns the live holders."""
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    holders = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:
        pids = holders.get()
        alive = [pid for pid in pids if _holder_alive(pid)]
        if alive != pids:
            holders.put(alive)
            log.info("embedded PostgreSQL: forgot dead holders %s", sorted(set(pids) - set(alive)))
    return alive


def _socket_base() -> Path:
    base = Path(tempfile.gettempdir())
    text = str(base)
    if len(text) > _SOCKET_BASE_MAX_LENGTH or any(c.isspace() for c in text) or "'" in text:
        return Path("/tmp")
    return base


def socket_dir_for(pgdata: Path, runtime_path: Path | None = None) -> Path:
    """A short socket directory without spaces, one per data directory, owned by us alone.

    Replaces pgserver's choice (the data directory itself, or a runtime directory), which is
    passed unquoted to pg_ctl and may be too long for a unix socket path."""
    identity = f"{pgdata}-{pgdata.stat().st_ino}"
    path = _socket_base() / f"lending-pg-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
    path.mkdir(mode=0o700, exist_ok=True)  # an existing one is checked below
    info = path.lstat()
    owners = {os.geteuid(), pgdata.stat().st_uid}
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
        raise RuntimeError(
            f"embedded PostgreSQL socket directory {path} exists but is not a directory owned "
            "by this user; remove it"
        )
    return path


def _restrict_socket_dir(server) -> None:
    """pgserver opens a separate socket directory to everyone (0777) when running as root (the
    server then runs as the `pgserver` user): give it to that user alone."""
    socket_dir = server.get_postmaster_info().socket_dir
    if socket_dir is None or socket_dir == server.pgdata or server.system_user is None:
        return
    import pwd

    owner = pwd.getpwnam(server.system_user)
    os.chown(socket_dir, owner.pw_uid, owner.pw_gid)
    socket_dir.chmod(0o700)


def _settings_changed(server) -> list[str]:
    """ALTER SYSTEM every SERVER_SETTINGS value the server does not have; the names changed."""
    url = _with_driver(make_url(server.get_uri(database="postgres")), "psycopg")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            changed = []
            for name, value in SERVER_SETTINGS.items():
                current = conn.execute(sa.text("SELECT current_setting(:n)"), {"n": name})
                if current.scalar() != value:
                    conn.exec_driver_sql(f"ALTER SYSTEM SET {name} = '{value}'")
                    changed.append(name)
            return changed
    finally:
        admin.dispose()


def _ensure_server_settings(server) -> None:
    """Apply SERVER_SETTINGS once in the life of a data directory (a restart when any changed)."""
    _restrict_socket_dir(server)
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    with server._lock:
        changed = _settings_changed(server)
        if not changed:
            return
        pg_ctl(
            ["-w", "-l", str(server.log), "restart"],
            pgdata=server.pgdata,
            user=server.system_user,
            timeout=30,
        )
        # pgserver stops the server it knows by pid when the last handle closes: refresh it.
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)
    _restrict_socket_dir(server)
    log.info(
        "embedded PostgreSQL restarted with %s",
        ", ".join(f"{name}={SERVER_SETTINGS[name]}" for name in changed),
    )


def _with_driver(url: URL, driver: str) -> URL:
    return url.set(drivername=f"postgresql+{driver}")


def server_url(settings: Settings) -> URL:
    """A URL of the server (database part is the operational database)."""
    if settings.database_url:
        return _with_driver(make_url(reveal(settings.database_url)), "psycopg")
    server = embedded_server(settings)
    return _with_driver(make_url(server.get_uri(database=OPERATIONAL_DATABASE)), "psycopg")


def ensure_database(url: URL) -> None:
    """Create the database named in `url` if the server does not have it yet."""
    admin = create_admin_engine(url)
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": url.database},
            ).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    finally:
        admin.dispose()


def drop_database(url: URL) -> None:
    admin = create_admin_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def create_admin_engine(url: URL) -> sa.Engine:
    """An autocommit engine on the server's `postgres` database, for CREATE/DROP DATABASE."""
    return sa.create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        hide_parameters=True,
    )


@lru_cache(maxsize=8)
def operational_url(settings: Settings) -> str:
    """The operational database's URL, creating the database on the embedded server if needed."""
    url = server_url(settings)
    if not settings.database_url:
        ensure_database(url)
    return url.render_as_string(hide_password=False)


@lru_cache(maxsize=8)
def dagster_storage_url(settings: Settings) -> str:
    """The Dagster instance storage URL (psycopg2: dagster-postgres' NOTIFY needs it).

    Embedded: its own database `dagster`. External: the same database as LENDING_DATABASE_URL
    (Dagster's tables live in `public`, ours in `lending`).
    """
    url = server_url(settings)
    if not settings.database_url:
        url = url.set(database=DAGSTER_DATABASE)
        ensure_database(url)
    return _with_driver(url, "psycopg2").render_as_string(hide_password=False)
