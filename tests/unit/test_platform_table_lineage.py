"""The workflow assets that read a platform table (written by the platform's own services, not
by an asset) descend from that table's one node: the external AssetSpec the analytics module
declares for it."""

from __future__ import annotations

import dagster as dg
import pytest

READS = {
    "loan_tracking": "partners",
    "eligible_creators": "creators",
    "escrow_releases": "escrows",
    "credit_guardrails": "credit_transactions",
    "credit_risk_dashboard": "retailers",
    "loan_dpd": "collection_loans",
}


@pytest.mark.parametrize(("asset", "table"), sorted(READS.items()))
def test_a_workflow_asset_descends_from_the_platform_table_it_reads(asset, table):
    from lending_pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    table_key = dg.AssetKey(["lending", table])
    assert table_key in graph.get(dg.AssetKey(asset)).parent_keys
    assert not graph.get(table_key).is_materializable  # described, never written by Dagster


def test_each_platform_table_is_one_node_shared_by_analytics_and_the_workflows():
    from lending_pipelines.assets.analytics import PLATFORM_TABLES
    from lending_pipelines.assets.platform_tables import PLATFORM_TABLE_KEYS
    from lending_pipelines.definitions import defs

    declared = {spec.key for spec in PLATFORM_TABLES}
    assert set(PLATFORM_TABLE_KEYS.values()) <= declared
    keys = [key for key in defs.resolve_asset_graph().get_all_asset_keys() if key.path[-1] in
            {"partners", "creators", "escrows", "retailers", "credit_accounts", "orders",
             "credit_transactions", "collection_loans", "installments"}]  # fmt: skip
    assert sorted(keys) == sorted(PLATFORM_TABLE_KEYS.values())
