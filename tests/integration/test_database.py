"""The operational database: migrations, the embedded server, an external server, audit, flags."""

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

import lending_pipelines.db.tables  # noqa: F401  (registers every workflow's tables)
from lending_pipelines.db import migrate
from lending_pipelines.db.audit import record_audit
from lending_pipelines.db.common import audit_log, feature_flags
from lending_pipelines.db.flags import flag_enabled, set_flag
from lending_pipelines.db.meta import SCHEMA, metadata
from lending_pipelines.db.payouts import VIEW_NAMES
from lending_pipelines.db.server import drop_database, ensure_database, server_url
from lending_pipelines.settings import Settings


@pytest.fixture
def scratch_url(settings):
    """A second, empty database on the same server, dropped afterwards."""
    url = server_url(settings).set(database=f"lending_scratch_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    yield url.render_as_string(hide_password=False)
    drop_database(url)


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names(schema=SCHEMA))
    finally:
        engine.dispose()


def test_upgrade_creates_the_cross_cutting_tables_and_is_idempotent(scratch_url):
    migrate.upgrade(scratch_url)
    first = _tables(scratch_url)
    migrate.upgrade(scratch_url)
    assert {"audit_log", "feature_flags", "inbound_events", "outbox"} <= first
    assert _tables(scratch_url) == first
    assert migrate.current_revisions(scratch_url) == migrate.head_revisions()


def test_downgrade_then_upgrade_round_trips(scratch_url):
    migrate.upgrade(scratch_url)
    before = _tables(scratch_url)
    migrate.downgrade(scratch_url, "base")
    assert _tables(scratch_url) == {"alembic_version"} or _tables(scratch_url) == set()
    assert migrate.current_revisions(scratch_url) == set()
    migrate.upgrade(scratch_url)
    assert _tables(scratch_url) == before


def test_migrations_match_the_table_definitions_the_code_queries(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "version_table_schema": SCHEMA,
                "include_name": lambda name, type_, parent: type_ != "schema" or name == SCHEMA,
            },
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_audit_entry_commits_and_rolls_back_with_the_change(db):
    with db.begin() as conn:
        record_audit(
            conn,
            actor="ops@example.com",
            action="credit.pause",
            entity="retailer",
            entity_id=42,
            old_value={"status": "ACTIVE"},
            new_value={"status": "PAUSED"},
            reason="over limit",
            run_id="run-1",
        )
    with pytest.raises(RuntimeError), db.begin() as conn:
        record_audit(conn, actor="x", action="never", entity="retailer", entity_id=1)
        raise RuntimeError("the change failed")
    with db.connect() as conn:
        rows = conn.execute(sa.select(audit_log)).mappings().all()
    assert [(r["action"], r["entity_id"], r["new_value"], r["run_id"]) for r in rows] == [
        ("credit.pause", "42", {"status": "PAUSED"}, "run-1")
    ]


def test_a_flag_stored_in_the_table_overrides_the_environment_and_is_audited(db):
    env_on = Settings.from_env({"CRON_ENABLED": "true"})
    with db.begin() as conn:
        assert flag_enabled(conn, "CRON_ENABLED", env_on) is True
        set_flag(conn, "CRON_ENABLED", False, "ops@example.com", reason="incident 12")
    with db.begin() as conn:
        assert flag_enabled(conn, "CRON_ENABLED", env_on) is False
        assert flag_enabled(conn, "REMINDERS_ENABLED", env_on) is True
        stored = conn.execute(sa.select(feature_flags.c.updated_by)).scalar_one()
        audit = conn.execute(sa.select(audit_log.c.action, audit_log.c.new_value)).one()
    assert stored == "ops@example.com"
    assert audit == ("feature_flag.set", {"enabled": False})
    with pytest.raises(KeyError, match="unknown feature flag 'NOPE'"), db.begin() as conn:
        flag_enabled(conn, "NOPE", env_on)


def test_lending_database_url_points_everything_at_another_server(server_tmp_path):
    """A second pgserver stands in for an external PostgreSQL; nothing embedded is started."""
    import pgserver

    other = pgserver.get_server(server_tmp_path / "other-pg", cleanup_mode="stop")
    url = make_url(other.get_uri(database="postgres")).set(drivername="postgresql+psycopg")
    rendered = url.render_as_string(hide_password=False)
    home = server_tmp_path / "home"
    env = {**os.environ, "LENDING_DATABASE_URL": rendered, "LENDING_HOME": str(home)}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "lending_pipelines.cli", "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    assert {"audit_log", "feature_flags", "inbound_events", "outbox"} <= _tables(rendered)
    assert not (home / "pg").exists(), "no embedded server may start when the URL is set"


def _views(url: str) -> dict[str, str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT viewname, definition FROM pg_views WHERE schemaname = :schema"),
                {"schema": SCHEMA},
            )
            return dict(rows.all())
    finally:
        engine.dispose()


def test_the_payout_views_the_dbt_models_replaced_are_dropped_and_come_back_on_downgrade(
    scratch_url,
):
    migrate.upgrade(scratch_url, "0006_payouts_overlap")
    original = _views(scratch_url)
    assert {"payout_batch_summary", "creator_payout_history"} <= set(original)

    migrate.upgrade(scratch_url)
    dropped = _views(scratch_url)
    assert "payout_batch_summary" not in dropped and "creator_payout_history" not in dropped
    assert dropped["creator_token_balances"] == original["creator_token_balances"]
    assert set(dropped) == set(VIEW_NAMES)

    migrate.downgrade(scratch_url, "0006_payouts_overlap")
    assert _views(scratch_url) == original
