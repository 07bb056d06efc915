"""The dbt project in `dbt/` and how dbt reaches the operational database.

`dbt/profiles.yml` reads every connection value from the environment. `dbt_env(url)` derives
those variables from the SQLAlchemy URL the code location uses (the embedded server,
LENDING_DATABASE_URL, or a test database), so dbt builds schema `analytics` in the same database
as the `lending` tables it reads. The password goes in `DBT_ENV_SECRET_LENDING_DBT_PASSWORD`:
dbt scrubs values of `DBT_ENV_SECRET_*` variables from everything it logs.

The manifest (`dbt/target/manifest.json`) is built with `dbt parse` when it is missing or older
than the project's files, so a fresh clone loads without a separate preparation step. Parsing
needs the profile's variables to resolve but makes no connection: `manifest_env` gives the
configured database's names without its password and without starting any server.

Run dbt by hand against the configured database: `uv run python -m lending_pipelines.analytics_dbt
build` (any dbt arguments; default `build`); `... analytics_dbt prepare` only parses the manifest.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, make_url

from .db.server import OPERATIONAL_DATABASE, operational_url
from .resources.dbt import DbtResource
from .settings import PROJECT_ROOT, Settings, get_settings, reveal

if TYPE_CHECKING:  # dagster-dbt imports dbt-core (~2 s): only where dbt runs or parses
    from dagster_dbt import DbtProject

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
ANALYTICS_SCHEMA = "analytics"
DEFAULT_PORT = "5432"

HOST_ENV = "LENDING_DBT_HOST"
PORT_ENV = "LENDING_DBT_PORT"
USER_ENV = "LENDING_DBT_USER"
PASSWORD_ENV = "DBT_ENV_SECRET_LENDING_DBT_PASSWORD"  # the prefix makes dbt scrub it from logs
DBNAME_ENV = "LENDING_DBT_DBNAME"
SCHEMA_ENV = "LENDING_DBT_SCHEMA"
SSLMODE_ENV = "LENDING_DBT_SSLMODE"
CONNECTION_ENV = (
    HOST_ENV,
    PORT_ENV,
    USER_ENV,
    PASSWORD_ENV,
    DBNAME_ENV,
    SCHEMA_ENV,
    SSLMODE_ENV,
)

# The dbt installed next to this interpreter (the project's venv), found even when the venv's
# bin directory is not on PATH (e.g. `.venv/bin/dagster` run directly).
_BIN_DIR = str(Path(sys.executable).parent)
DBT_EXECUTABLE = shutil.which("dbt", path=_BIN_DIR) or "dbt"

# Files whose change makes the stored manifest stale (target/ and logs/ are dbt's output).
PROJECT_FILE_SUFFIXES = (".yml", ".yaml", ".sql", ".csv", ".md")
OUTPUT_DIRS = ("target", "logs", "dbt_packages")


class DbtConnectionError(ValueError):
    """A database URL dbt cannot be pointed at (the message never contains the password)."""


def _query_value(url: URL, name: str) -> str | None:
    value = url.query.get(name)
    if isinstance(value, tuple):  # a repeated parameter: libpq takes the last one
        value = value[-1] if value else None
    return value or None


def _shown(url: URL) -> str:
    """The URL for an error message: no password, neither `user:pw@` nor `?password=`."""
    hidden = {k: "***" for k in url.query if k.lower() in {"password", "passfile", "sslpassword"}}
    return url.update_query_dict(hidden).render_as_string(hide_password=True)


def dbt_env(url: str | URL) -> dict[str, str]:
    """The environment variables `dbt/profiles.yml` reads, for the database at `url`.

    A unix-socket directory given as `?host=/path` (what the embedded server uses) becomes the
    host: psycopg2 accepts a directory there. A URL without user falls back to the OS user and
    one without host to libpq's default socket, as psycopg would.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    shown = _shown(parsed)
    if not parsed.drivername.startswith("postgresql"):
        raise DbtConnectionError(
            f"database URL {shown}: driver {parsed.drivername!r} is not PostgreSQL "
            "(dbt-postgres needs a postgresql:// URL)"
        )
    dbname = parsed.database or _query_value(parsed, "dbname")
    if not dbname:
        raise DbtConnectionError(f"database URL {shown}: no database name")
    port = parsed.port or _query_value(parsed, "port") or DEFAULT_PORT
    if not str(port).isdigit():
        raise DbtConnectionError(f"database URL {shown}: port {port!r} is not a number")
    return {
        HOST_ENV: parsed.host or _query_value(parsed, "host") or "",
        PORT_ENV: str(port),
        USER_ENV: parsed.username or _query_value(parsed, "user") or getpass.getuser(),
        PASSWORD_ENV: parsed.password or _query_value(parsed, "password") or "",
        DBNAME_ENV: dbname,
        SCHEMA_ENV: ANALYTICS_SCHEMA,
        SSLMODE_ENV: _query_value(parsed, "sslmode") or "prefer",
    }


def manifest_env(settings: Settings) -> dict[str, str]:
    """Variables for `dbt parse`: the configured database's names, never its password.

    Parsing makes no connection, so the embedded server is not started for it; only the
    database and schema names end up in the manifest (as the models' relation names).
    """
    if settings.database_url:
        url = make_url(reveal(settings.database_url))
    else:
        url = URL.create(
            "postgresql",
            username="postgres",
            database=OPERATIONAL_DATABASE,
            query={"host": str(settings.pg_data_dir)},
        )
    return {**dbt_env(url), PASSWORD_ENV: "", **_path_with_dbt()}


def _path_with_dbt() -> dict[str, str]:
    """PATH with this venv's bin first when it is missing (dagster-dbt's preparer runs `dbt`)."""
    path = os.environ.get("PATH", "")
    if _BIN_DIR in path.split(os.pathsep):
        return {}
    return {"PATH": os.pathsep.join([_BIN_DIR, path]) if path else _BIN_DIR}


def dbt_vars(settings: Settings) -> dict[str, str]:
    """dbt `--vars` taken from settings (so a timezone is configuration, not a code change)."""
    return {"loans_timezone": settings.loans_timezone, "credit_timezone": settings.credit_timezone}


def parse_key(env: Mapping[str, str], vars_json: str) -> str:
    """A digest of what dbt compares before reusing a parse: the profile's connection values
    (the password aside: dbt leaves it out too) and the vars."""
    shown = {name: value for name, value in env.items() if name != PASSWORD_ENV}
    text = json.dumps({"env": shown, "vars": vars_json}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def dbt_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env` in this process's environment for the block, then restore what was there.

    dagster-dbt starts dbt with a copy of `os.environ`; the values live only for the call.
    """
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _project_files(project_dir: Path) -> Iterator[Path]:
    for path in project_dir.rglob("*"):
        relative = path.relative_to(project_dir)
        if relative.parts and relative.parts[0] in OUTPUT_DIRS:
            continue
        if path.is_file() and path.suffix in PROJECT_FILE_SUFFIXES:
            yield path


def _stale(manifest: Path, project_dir: Path) -> bool:
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(path.stat().st_mtime > built for path in _project_files(project_dir))


def manifest_is_stale(project: DbtProject) -> bool:
    """True when the manifest is missing or older than a model, YAML or the project file."""
    return _stale(project.manifest_path, project.project_dir)


def prepare_manifest(project: DbtProject, settings: Settings) -> Path:
    """`dbt parse` into the project's target path (safe when several processes do it at once)."""
    with dbt_environ(manifest_env(settings)):
        project.preparer.prepare(project)
    return project.manifest_path


def dbt_project(project_dir: Path, settings: Settings) -> DbtProject:
    from dagster_dbt import DbtProject

    return DbtProject(
        project_dir=project_dir,
        profiles_dir=project_dir,
        # the run's vars too: dbt reuses this parse at run time only when vars and profile match
        prepare_project_cli_args=["parse", "--quiet", "--vars", json.dumps(dbt_vars(settings))],
    )


def build_project(
    project_dir: Path = DBT_PROJECT_DIR, settings: Settings | None = None
) -> DbtProject:
    """The DbtProject with an up-to-date manifest: parsed when missing or older than a project
    file. (Not on every `dagster dev` load: every run and step process imports the definitions,
    and a 10 s parse each time would slow every run.)"""
    settings = settings or get_settings()
    project = dbt_project(project_dir, settings)
    if manifest_is_stale(project):
        prepare_manifest(project, settings)
    return project


@lru_cache(maxsize=1)
def manifest_path() -> Path:
    """`dbt/target/manifest.json`, parsed first when missing or stale (dagster-dbt is imported
    only then: a code location loading an up-to-date manifest never imports dbt)."""
    path = DBT_PROJECT_DIR / "target" / "manifest.json"
    if _stale(path, DBT_PROJECT_DIR):
        return build_project().manifest_path
    return path


def dbt_resource() -> DbtResource:
    """The `dbt` resource: the CLI in `dbt/` with its own profiles.yml."""
    return DbtResource(
        project_dir=os.fspath(DBT_PROJECT_DIR),
        profiles_dir=os.fspath(DBT_PROJECT_DIR),
        dbt_executable=DBT_EXECUTABLE,
    )


VARS_COMMANDS = {"build", "run", "test", "compile", "show", "seed", "snapshot", "parse", "ls"}


def dbt_command(args: Sequence[str], settings: Settings) -> list[str]:
    """The dbt command line for running by hand: project and profiles dirs, settings' vars."""
    args = list(args) or ["build"]
    command = [DBT_EXECUTABLE, *args]
    if args[0] in VARS_COMMANDS and "--vars" not in args:
        command += ["--vars", json.dumps(dbt_vars(settings))]
    return command + ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run dbt by hand against the database the code location uses.

    `prepare` only (re)builds the manifest, without any database: for image builds and CI.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    settings = get_settings()
    if args == ["prepare"]:
        print(prepare_manifest(dbt_project(DBT_PROJECT_DIR, settings), settings))
        return 0
    env = {**os.environ, **dbt_env(operational_url(settings))}
    return subprocess.call(dbt_command(args, settings), env=env, cwd=DBT_PROJECT_DIR)


if __name__ == "__main__":
    sys.exit(main())
