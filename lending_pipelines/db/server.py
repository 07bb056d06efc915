"""Where the databases live: an external server (LENDING_DATABASE_URL) or the embedded one.

With LENDING_DATABASE_URL unset, a PostgreSQL server from `pgserver` is started (or reused)
in LENDING_HOME/pg. pgserver keeps a list of the processes holding a handle on it and stops the
server when the last one exits, so `make dev` and test sessions stop what they started.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from ..settings import Settings

log = logging.getLogger(__name__)

OPERATIONAL_DATABASE = "lending"
DAGSTER_DATABASE = "dagster"
# Dagster (webserver, daemon, run and step processes), tests and the receiver share the server.
MAX_CONNECTIONS = 300


def embedded_server(settings: Settings):
    """Start or reuse the embedded PostgreSQL server under LENDING_HOME/pg."""
    import pgserver  # imported lazily: not needed when an external server is configured

    settings.home.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(settings.pg_data_dir, cleanup_mode="stop")
    _ensure_max_connections(server)
    return server


def _ensure_max_connections(server) -> None:
    """Raise max_connections once in the life of a data directory (the default 100 is tight)."""
    current = int(server.psql("SHOW max_connections;").split("\n")[2].strip())
    if current >= MAX_CONNECTIONS:
        return
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    with server._lock:
        server.psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS};")
        pg_ctl(
            ["-w", "-l", str(server.log), "restart"],
            pgdata=server.pgdata,
            user=server.system_user,
            timeout=30,
        )
        # pgserver stops the server it knows by pid when the last handle closes: refresh it.
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)
    log.info("embedded PostgreSQL restarted with max_connections=%s", MAX_CONNECTIONS)


def _with_driver(url: URL, driver: str) -> URL:
    return url.set(drivername=f"postgresql+{driver}")


def server_url(settings: Settings) -> URL:
    """A URL of the server (database part is the operational database)."""
    if settings.database_url:
        return _with_driver(make_url(settings.database_url), "psycopg")
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
