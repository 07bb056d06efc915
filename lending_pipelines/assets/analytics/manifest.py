"""The dbt project's nodes as Dagster specs, read from `dbt/target/manifest.json` alone.

Built without dagster-dbt (which imports dbt-core, ~2 s): every run and step process loads the
code location, and only the analytics run needs dbt. Keys: models `analytics/<model>` (their
schema), sources the `meta.dagster.asset_key` of the asset writing the table or, for tables no
asset writes, `<source>/<table>` (described as external assets); each schema test is an asset
check on the model it tests. `translator()` makes dagster-dbt's translator agree with these
keys when the run streams dbt's events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import dagster as dg

from ...analytics_dbt import ANALYTICS_SCHEMA, manifest_path

GROUP = "analytics"
PLATFORM_GROUP = "platform_tables"
OWNERS = ["team:finance-analytics"]
WORKFLOW_TAG = {"lending/workflow": "analytics"}
KINDS = {"dbt", "postgres"}

Node = Mapping[str, Any]


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    """The parsed manifest (re-parsed first when older than a project file)."""
    return json.loads(manifest_path().read_text())


def asset_key(node: Node) -> dg.AssetKey:
    """The Dagster key of a model or a source table."""
    if node["resource_type"] == "source":
        meta = node.get("config", {}).get("meta") or node.get("meta") or {}
        declared = meta.get("dagster", {}).get("asset_key")
        return (
            dg.AssetKey(declared) if declared else dg.AssetKey([node["source_name"], node["name"]])
        )
    return dg.AssetKey([ANALYTICS_SCHEMA, node["name"]])


def layer_tags(node: Node) -> dict[str, str]:
    layer = "staging" if node["name"].startswith("stg_") else "mart"
    return {**{tag: "" for tag in node.get("tags", [])}, **WORKFLOW_TAG, "lending/layer": layer}


def _node(manifest: Mapping[str, Any], unique_id: str) -> Node:
    return manifest["nodes"].get(unique_id) or manifest["sources"][unique_id]


def _column_schema(node: Node) -> dg.TableSchema | None:
    columns = [
        dg.TableColumn(
            name, type=column.get("data_type") or "?", description=column.get("description") or None
        )
        for name, column in node.get("columns", {}).items()
    ]
    return dg.TableSchema(columns=columns) if columns else None


def models(manifest: Mapping[str, Any]) -> list[Node]:
    return sorted(
        (n for n in manifest["nodes"].values() if n["resource_type"] == "model"),
        key=lambda n: n["unique_id"],
    )


def model_spec(manifest: Mapping[str, Any], node: Node) -> dg.AssetSpec:
    schema = _column_schema(node)
    metadata: dict[str, Any] = {"dagster/table_name": f"{node['schema']}.{node['alias']}"}
    if schema is not None:
        metadata["dagster/column_schema"] = schema
    return dg.AssetSpec(
        asset_key(node),
        deps=[asset_key(_node(manifest, parent)) for parent in node["depends_on"]["nodes"]],
        description=node.get("description") or f"dbt model {node['name']}",
        group_name=GROUP,
        owners=OWNERS,
        kinds=KINDS,
        tags=layer_tags(node),
        code_version=node["checksum"]["checksum"][:16],
        metadata=metadata,
        skippable=True,
    )


def _tested_model(manifest: Mapping[str, Any], test: Node) -> str | None:
    """The model a test checks: a schema test's attached node, or the model a singular test
    names in `meta.dagster.ref` (dagster-dbt's convention for tests over several models)."""
    if test.get("attached_node"):
        return test["attached_node"]
    meta = test.get("config", {}).get("meta") or test.get("meta") or {}
    name = (meta.get("dagster", {}).get("ref") or {}).get("name")
    found = [n["unique_id"] for n in models(manifest) if n["name"] == name]
    return found[0] if found else None


def check_specs(manifest: Mapping[str, Any]) -> list[dg.AssetCheckSpec]:
    """One check per test of a model, named as dbt names the test."""
    specs = []
    for node in sorted(manifest["nodes"].values(), key=lambda n: n["unique_id"]):
        attached = _tested_model(manifest, node) if node["resource_type"] == "test" else None
        if not attached or attached not in manifest["nodes"]:
            continue
        others = [n for n in node["depends_on"]["nodes"] if n != attached]
        specs.append(
            dg.AssetCheckSpec(
                node["name"],
                asset=asset_key(manifest["nodes"][attached]),
                additional_deps=[asset_key(_node(manifest, n)) for n in others],
                description=node.get("description") or None,
            )
        )
    return specs


def table_relations(manifest: Mapping[str, Any]) -> dict[dg.AssetKey, tuple[str, str]]:
    """Asset key → (schema, table) of every model dbt materializes as a table."""
    return {
        asset_key(node): (node["schema"], node["alias"])
        for node in models(manifest)
        if node["config"]["materialized"] == "table"
    }


def model_names(manifest: Mapping[str, Any]) -> dict[dg.AssetKey, str]:
    return {asset_key(node): node["name"] for node in models(manifest)}


def platform_table_specs(manifest: Mapping[str, Any]) -> list[dg.AssetSpec]:
    """External assets for the source tables no Dagster asset writes (partners, creators and
    escrows come from the platform's own services), so lineage starts at a described node."""
    specs = []
    for unique_id, source in sorted(manifest["sources"].items()):
        meta = source.get("config", {}).get("meta") or source.get("meta") or {}
        if "asset_key" in meta.get("dagster", {}) or not manifest["child_map"].get(unique_id):
            continue
        specs.append(
            dg.AssetSpec(
                asset_key(source),
                description=source["description"],
                group_name=PLATFORM_GROUP,
                kinds={"postgres"},
                metadata={"dagster/table_name": f"{source['schema']}.{source['name']}"},
            )
        )
    return specs


@lru_cache(maxsize=1)
def translator() -> Any:
    """dagster-dbt's translator giving the keys above (imported here, in the analytics run)."""
    from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

    class AnalyticsTranslator(DagsterDbtTranslator):
        def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
            return asset_key(dbt_resource_props)

    # Several operational tables are written by one asset (poll_attempts and loan_tracking by
    # `loan_tracking`): their sources share that asset's key.
    return AnalyticsTranslator(
        settings=DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True)
    )
