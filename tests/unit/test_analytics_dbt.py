"""How dbt is pointed at the operational database, and how the dbt assets sit in the graph."""

from __future__ import annotations

import json
import os
import shutil
import time

import dagster as dg
import pytest

from lending_pipelines.analytics_dbt import (
    CONNECTION_ENV,
    DBNAME_ENV,
    DBT_PROJECT_DIR,
    HOST_ENV,
    PASSWORD_ENV,
    PORT_ENV,
    SCHEMA_ENV,
    SSLMODE_ENV,
    USER_ENV,
    DbtConnectionError,
    build_project,
    dbt_command,
    dbt_env,
    dbt_environ,
    manifest_env,
    manifest_is_stale,
)
from lending_pipelines.assets.analytics import (
    PLATFORM_TABLES,
    analytics_dbt_models,
)
from lending_pipelines.settings import Settings


def key(*path: str) -> dg.AssetKey:
    return dg.AssetKey(list(path))


def test_embedded_server_url_becomes_a_unix_socket_host():
    env = dbt_env("postgresql+psycopg://postgres:@/lending?host=%2Fwork%2F.lending%2Fpg")

    assert env == {
        HOST_ENV: "/work/.lending/pg",
        PORT_ENV: "5432",
        USER_ENV: "postgres",
        PASSWORD_ENV: "",
        DBNAME_ENV: "lending",
        SCHEMA_ENV: "analytics",
        SSLMODE_ENV: "prefer",
    }


def test_tcp_url_gives_host_port_user_encoded_password_and_sslmode():
    env = dbt_env("postgresql+psycopg2://app:p%40ss%3Aw%2Fd@db.internal:6543/ops?sslmode=require")

    assert (env[HOST_ENV], env[PORT_ENV], env[USER_ENV]) == ("db.internal", "6543", "app")
    assert env[PASSWORD_ENV] == "p@ss:w/d"
    assert (env[DBNAME_ENV], env[SCHEMA_ENV], env[SSLMODE_ENV]) == ("ops", "analytics", "require")


def test_password_travels_in_a_variable_dbt_scrubs_from_its_logs():
    assert PASSWORD_ENV.startswith("DBT_ENV_SECRET_")
    profile = (DBT_PROJECT_DIR / "profiles.yml").read_text()
    for name in CONNECTION_ENV:
        assert f"env_var('{name}'" in profile


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://app:hunter2-secret@db.internal:5432", "no database name"),
        ("mysql://app:hunter2-secret@db.internal/ops", "driver 'mysql' is not PostgreSQL"),
        ("postgresql://app:hunter2-secret@db.internal/ops?port=abc", "port 'abc'"),
        ("postgresql://app@db.internal:5432?password=hunter2-secret", "no database name"),
        ("mysql://app@db.internal/ops?sslpassword=hunter2-secret", "is not PostgreSQL"),
        ("postgresql://db.internal/ops?port=abc&PASSWORD=hunter2-secret", "port 'abc'"),
    ],
)
def test_unusable_url_is_refused_naming_the_problem_never_the_password(url, problem):
    with pytest.raises(DbtConnectionError) as raised:
        dbt_env(url)

    assert problem in str(raised.value)
    assert "db.internal" in str(raised.value)
    assert "hunter2-secret" not in str(raised.value)


def test_manifest_env_names_the_configured_database_without_its_password(tmp_path):
    external = Settings.from_env(
        {"LENDING_HOME": str(tmp_path), "LENDING_DATABASE_URL": "postgresql://u:pw-x@h:5433/ops"}
    )
    embedded = Settings.from_env({"LENDING_HOME": str(tmp_path)})

    parse_external = manifest_env(external)
    parse_embedded = manifest_env(embedded)

    assert (parse_external[DBNAME_ENV], parse_external[PASSWORD_ENV]) == ("ops", "")
    assert (parse_embedded[DBNAME_ENV], parse_embedded[HOST_ENV]) == ("lending", f"{tmp_path}/pg")
    assert not (tmp_path / "pg").exists()  # parsing never starts the embedded server


def test_dbt_environ_sets_values_for_the_block_only_and_restores_after_errors(monkeypatch):
    monkeypatch.setenv(HOST_ENV, "previous-host")
    monkeypatch.delenv(USER_ENV, raising=False)

    with pytest.raises(RuntimeError), dbt_environ({HOST_ENV: "db", USER_ENV: "app"}):
        assert (os.environ[HOST_ENV], os.environ[USER_ENV]) == ("db", "app")
        raise RuntimeError("dbt failed")

    assert os.environ[HOST_ENV] == "previous-host"
    assert USER_ENV not in os.environ


def test_running_dbt_by_hand_passes_the_settings_vars_to_build_commands_only():
    settings = Settings.from_env({"LENDING_LOANS_TIMEZONE": "Africa/Kampala"})

    build = dbt_command([], settings)
    debug = dbt_command(["debug"], settings)

    assert build[1] == "build"
    assert json.loads(build[build.index("--vars") + 1]) == {
        "loans_timezone": "Africa/Kampala",
        "credit_timezone": "Asia/Kolkata",
    }
    assert "--vars" not in debug
    assert build[-4:] == [
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]


@pytest.mark.slow(seconds=35)
def test_a_fresh_clone_parses_its_manifest_without_env_or_database(tmp_path, monkeypatch):
    project_dir = tmp_path / "dbt"
    shutil.copytree(DBT_PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    for name in CONNECTION_ENV:
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env({"LENDING_HOME": str(tmp_path / "home")})

    project = build_project(project_dir, settings)

    manifest = json.loads(project.manifest_path.read_text())
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert {"payout_batch_summary", "disbursement_outcomes_daily"} <= models
    assert not manifest_is_stale(project)
    assert not any(name in os.environ for name in CONNECTION_ENV)
    assert not (tmp_path / "home" / "pg").exists()

    time.sleep(0.01)
    compiled = project_dir / "target" / "compiled" / "payout_batch_summary.sql"
    compiled.parent.mkdir(parents=True, exist_ok=True)
    compiled.write_text("select 1")  # dbt's own output never makes the manifest stale
    assert not manifest_is_stale(project)
    (project_dir / "models" / "marts" / "payouts" / "payout_batch_summary.sql").touch()
    assert manifest_is_stale(project)


def test_every_model_is_an_analytics_asset_keyed_by_its_schema():
    specs = list(analytics_dbt_models.specs)

    assert {spec.group_name for spec in specs} == {"analytics"}
    assert all(spec.key.path[0] == "analytics" for spec in specs)
    assert all(spec.kinds == {"dbt", "postgres"} for spec in specs)
    assert key("analytics", "payout_batch_summary") in {spec.key for spec in specs}


@pytest.mark.parametrize(
    ("model", "upstream"),
    [
        ("stg_lending__payout_items", key("payout_transfers")),
        ("stg_lending__payout_batches", key("payout_batch")),
        ("stg_lending__escrow_releases", key("escrow_releases")),
        ("stg_lending__repayments", key("auto_deductions")),
        ("stg_lending__poll_attempts", key("loan_tracking")),
        ("stg_lending__loan_tracking", key("loan_tracking")),
        ("stg_lending__disbursement_requests", key("loan_disbursements")),
        ("stg_lending__creators", key("lending", "creators")),
    ],
)
def test_lineage_runs_from_the_asset_writing_each_table_to_the_models(model, upstream):
    assert analytics_dbt_models.asset_deps[key("analytics", model)] == {upstream}


def test_marts_read_only_the_staging_views():
    summary = analytics_dbt_models.asset_deps[key("analytics", "payout_batch_summary")]

    assert summary == {
        key("analytics", "stg_lending__payout_batches"),
        key("analytics", "stg_lending__payout_items"),
    }


def test_tables_no_asset_writes_are_described_external_assets():
    assert {spec.key for spec in PLATFORM_TABLES} == {
        key("lending", "collection_loans"),
        key("lending", "installments"),
        key("lending", "creators"),
        key("lending", "escrows"),
        key("lending", "partners"),
        key("lending", "retailers"),
        key("lending", "credit_accounts"),
        key("lending", "orders"),
        key("lending", "credit_transactions"),
    }
    assert all(
        spec.group_name == "platform_tables" and spec.description for spec in PLATFORM_TABLES
    )


def test_schema_tests_are_asset_checks_on_the_marts():
    checks = {(check.asset_key, check.name) for check in analytics_dbt_models.check_specs}

    assert (
        key("analytics", "payout_batch_summary"),
        "unique_payout_batch_summary_payout_date",
    ) in (checks)
    assert (
        key("analytics", "creator_payout_history"),
        "accepted_values_creator_payout_history_status__pending__processing__paid__failed",
    ) in checks


def test_a_singular_test_is_a_check_on_the_model_its_meta_names():
    checks = {(check.asset_key, check.name) for check in analytics_dbt_models.check_specs}

    assert (
        key("analytics", "credit_outstanding_by_bucket"),
        "credit_buckets_reconcile_with_outstanding",
    ) in checks
