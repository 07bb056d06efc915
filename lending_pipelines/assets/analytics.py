"""Analytics: the dbt models in `dbt/` as Dagster assets (group `analytics`, schema `analytics`).

  staging  one view per operational table (`analytics/stg_lending__<table>`)
  payouts  payout_batch_summary, creator_payout_history
  escrow   escrow_release_daily, auto_deduct_daily
  loans    loan_polling_health_hourly, disbursement_outcomes_daily

dbt sources carry the key of the Dagster asset that writes each operational table, so lineage
reads partner API -> operational table -> dbt model. `dbt build` runs models and their schema
tests (tests are asset checks). One refresh a day at 05:00 UTC, after the payout (02:00 UTC),
escrow (02:00 / 23:00 Nairobi) and overnight loan runs; skipped while CRON_ENABLED is off.
"""

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from ..analytics_dbt import ANALYTICS_SCHEMA, analytics_project, dbt_env, dbt_environ, dbt_vars
from ..db.privacy import phone_number_findings
from ..instance import serial_tags
from ..kill_switch import automation_paused
from ..resources.database import DatabaseResource
from ..settings import get_settings
from .metadata import markdown_table

GROUP = "analytics"
PLATFORM_GROUP = "platform_tables"
OWNERS = ["team:finance-analytics"]
WORKFLOW_TAG = {"lending/workflow": "analytics"}
JOB_NAME = "analytics_refresh_job"
ROW_COUNT_KEY = "dagster/row_count"  # the key the UI shows as the table's row count


class AnalyticsTranslator(DagsterDbtTranslator):
    """Models keyed `analytics/<model>` (their schema), all in group `analytics`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([ANALYTICS_SCHEMA, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        layer = "staging" if dbt_resource_props["name"].startswith("stg_") else "mart"
        return {**super().get_tags(dbt_resource_props), **WORKFLOW_TAG, "lending/layer": layer}


# Several operational tables are written by one asset (poll_attempts and loan_tracking by
# `loan_tracking`): their sources share that asset's key.
TRANSLATOR = AnalyticsTranslator(
    settings=DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True)
)
PROJECT = analytics_project()
MANIFEST = json.loads(PROJECT.manifest_path.read_text())


def _table_relations(manifest: Mapping[str, Any]) -> dict[dg.AssetKey, tuple[str, str]]:
    """Asset key → (schema, table) of every model dbt materializes as a table."""
    return {
        TRANSLATOR.get_asset_key(node): (node["schema"], node["alias"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "table"
    }


def _platform_table_specs(manifest: Mapping[str, Any]) -> list[dg.AssetSpec]:
    """External assets for the source tables no Dagster asset writes (partners, creators and
    escrows come from the platform's own services), so lineage starts at a described node."""
    specs = []
    for unique_id, source in sorted(manifest["sources"].items()):
        meta = source.get("config", {}).get("meta") or source.get("meta") or {}
        if "asset_key" in meta.get("dagster", {}) or not manifest["child_map"].get(unique_id):
            continue
        specs.append(
            dg.AssetSpec(
                TRANSLATOR.get_asset_key(source),
                description=source["description"],
                group_name=PLATFORM_GROUP,
                kinds={"postgres"},
                metadata={"dagster/table_name": f"{source['schema']}.{source['name']}"},
            )
        )
    return specs


TABLES = _table_relations(MANIFEST)
PLATFORM_TABLES = _platform_table_specs(MANIFEST)


def _row_count(engine: sa.Engine, schema: str, table: str) -> int:
    relation = sa.table(table, schema=schema)
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(relation)).scalar_one()


def _with_row_count(context: dg.AssetExecutionContext, engine: sa.Engine, event: Any) -> Any:
    """Attach `dagster/row_count` to a table model's materialization.

    Counted here rather than with dagster-dbt's `fetch_row_counts`, which queries the relation
    name stored in the manifest (database included) and so fails whenever the run's database is
    not the one the manifest was parsed for (a test database, a renamed database).
    """
    if not isinstance(event, dg.Output):
        return event
    relation = TABLES.get(context.asset_key_for_output(event.output_name))
    if relation is None:
        return event
    rows = _row_count(engine, *relation)
    return event.with_metadata({**event.metadata, ROW_COUNT_KEY: dg.MetadataValue.int(rows)})


@dbt_assets(
    manifest=PROJECT.manifest_path,
    project=PROJECT,
    dagster_dbt_translator=TRANSLATOR,
    name="analytics_dbt_models",
    op_tags=WORKFLOW_TAG,
)
def analytics_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, database: DatabaseResource
) -> Iterator[Any]:
    """`dbt build` of the selected models and their tests, in the operational database."""
    engine = database.get_engine()
    args = ["build", "--vars", json.dumps(dbt_vars(get_settings()))]
    # dbt starts inside `cli`: the connection variables exist only for that call.
    with dbt_environ(dbt_env(engine.url)):
        invocation = dbt.cli(args, context=context)
    for event in invocation.stream():
        yield _with_row_count(context, engine, event)


analytics_refresh_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.assets(analytics_dbt_models),
    tags={**serial_tags(JOB_NAME), **WORKFLOW_TAG},
    description="Rebuild every analytics model (dbt build: models and their tests).",
)


@dg.schedule(
    name="analytics_daily_refresh",
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    job=analytics_refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="05:00 UTC: rebuild the analytics models after the night's payout, escrow and "
    "auto-deduct runs.",
)
def analytics_daily_refresh(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    paused = automation_paused(database)
    if paused:
        return paused
    day = (context.scheduled_execution_time or datetime.now(UTC)).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=f"{JOB_NAME}:{day}")


@dg.asset_check(
    asset=dg.AssetKey([ANALYTICS_SCHEMA, "disbursement_outcomes_daily"]),
    name="no_phone_numbers_in_analytics",
    description="No text column of any table or view in the analytics schema holds something "
    "that looks like a phone number (analytics leaves personal data out; free-text reasons "
    "must carry numbers masked).",
)
def no_phone_numbers_in_analytics(database: DatabaseResource) -> dg.AssetCheckResult:
    with database.connect() as conn:
        findings = phone_number_findings(conn, ANALYTICS_SCHEMA)
    rows = [{"relation": f.relation, "column": f.column, "rows": f.rows} for f in findings]
    return dg.AssetCheckResult(
        passed=not findings,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "no phone numbers in the analytics schema"
            if not findings
            else "phone numbers found in "
            + ", ".join(f"{f.relation}.{f.column} ({f.rows} rows)" for f in findings)
        ),
        metadata={"findings": markdown_table(rows, ["relation", "column", "rows"])},
    )


ANALYTICS_ASSETS = [analytics_dbt_models, *PLATFORM_TABLES]
ANALYTICS_CHECKS = [no_phone_numbers_in_analytics]
ANALYTICS_JOBS = [analytics_refresh_job]
ANALYTICS_SCHEDULES = [analytics_daily_refresh]
