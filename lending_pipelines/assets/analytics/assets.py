"""`analytics_dbt_models`: every dbt model as an asset and every schema test as its check, built
by one `dbt build` of the selected models (the connection from the `database` resource)."""

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dagster as dg
import sqlalchemy as sa

from ...analytics_dbt import DBT_PROJECT_DIR, dbt_env, dbt_environ, dbt_vars, parse_key
from ...resources.database import DatabaseResource
from ...resources.dbt import DbtResource
from ...settings import get_settings
from . import manifest as dbt_manifest
from .manifest import WORKFLOW_TAG

OP_NAME = "analytics_dbt_models"
ROW_COUNT_KEY = "dagster/row_count"  # the key the UI shows as the table's row count

MANIFEST = dbt_manifest.manifest()
TABLES = dbt_manifest.table_relations(MANIFEST)
MODEL_NAMES = dbt_manifest.model_names(MANIFEST)
PLATFORM_TABLES = dbt_manifest.platform_table_specs(MANIFEST)


def _row_count(engine: sa.Engine, schema: str, table: str) -> int:
    relation = sa.table(table, schema=schema)
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(relation)).scalar_one()


def _select_args(context: dg.AssetExecutionContext) -> list[str]:
    """`--select` for a subset (a UI selection, a re-executed check); nothing for everything."""
    every_check = context.assets_def.check_keys
    if set(context.selected_asset_keys) == set(MODEL_NAMES) and (
        set(context.selected_asset_check_keys) == set(every_check)
    ):
        return []
    names = [MODEL_NAMES[key] for key in sorted(context.selected_asset_keys)]
    models = {MODEL_NAMES[key] for key in context.selected_asset_keys}
    names += [
        check.name
        for check in sorted(context.selected_asset_check_keys)
        if MODEL_NAMES[check.asset_key] not in models
    ]
    return ["--select", " ".join(names)]


def _as_result(
    context: dg.AssetExecutionContext, engine: sa.Engine, event: Any
) -> dg.MaterializeResult | dg.AssetCheckResult | None:
    """dagster-dbt's event for a dbt node as this asset's result; `dagster/row_count` counted
    here for tables (dagster-dbt's own count queries the relation name stored in the manifest,
    which fails whenever the run's database is not the one the manifest was parsed for)."""
    if isinstance(event, dg.AssetMaterialization):
        if event.asset_key not in context.selected_asset_keys:
            return None
        metadata = dict(event.metadata)
        relation = TABLES.get(event.asset_key)
        if relation is not None:
            metadata[ROW_COUNT_KEY] = dg.MetadataValue.int(_row_count(engine, *relation))
        return dg.MaterializeResult(asset_key=event.asset_key, metadata=metadata)
    if isinstance(event, dg.AssetCheckEvaluation):
        key = dg.AssetCheckKey(event.asset_key, event.check_name)
        if key not in context.selected_asset_check_keys:
            return None
        return dg.AssetCheckResult(
            asset_key=event.asset_key,
            check_name=event.check_name,
            passed=event.passed,
            severity=event.severity,
            metadata=dict(event.metadata),
            description=event.description,
        )
    return None


@dg.multi_asset(
    name=OP_NAME,
    specs=[dbt_manifest.model_spec(MANIFEST, node) for node in dbt_manifest.models(MANIFEST)],
    check_specs=dbt_manifest.check_specs(MANIFEST),
    can_subset=True,
    op_tags=WORKFLOW_TAG,
)
def analytics_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtResource, database: DatabaseResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """`dbt build` of the selected models and their tests, in the operational database."""
    engine = database.get_engine()
    vars_json = json.dumps(dbt_vars(get_settings()))
    args = ["build", "--vars", vars_json, *_select_args(context)]
    # one target directory per invocation, named after the run (dbt.log is found by run id)
    target = (
        DBT_PROJECT_DIR / "target" / f"{OP_NAME}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    )
    started = time.monotonic()
    # dbt starts inside `cli`: the connection variables exist only for that call.
    env = dbt_env(engine.url)
    key = parse_key(env, vars_json)
    with dbt_environ(env):
        invocation = dbt.cli(
            args,
            manifest=MANIFEST,
            translator=dbt_manifest.translator(),
            target_path=target,
            parse_key=key,
        )
    try:
        for event in invocation.stream():
            result = _as_result(context, engine, event)
            if result is not None:
                yield result
    finally:
        dbt.keep_parse(target, key)
        dbt.prune(OP_NAME)
    context.log.info(f"dbt {' '.join(args[:1] + args[3:])} took {time.monotonic() - started:.1f} s")
