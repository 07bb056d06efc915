"""Collections analytics through Dagster's dbt assets on a hand-made book: bucket counts and
outstanding per day, DPD averages, collections per collector and the roll-rate matrix."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import sqlalchemy as sa

from lending_pipelines.analytics_dbt import dbt_resource
from lending_pipelines.assets.analytics.assets import analytics_dbt_models
from lending_pipelines.db.collections.book import compute_scores
from lending_pipelines.resources.database import DatabaseResource
from lending_pipelines.workflows.collections.dpd import run_dpd
from tests.collections_book import add_collectors, add_loan, pay
from tests.e2e.test_analytics_dbt import analytics_role  # noqa: F401  (fixture)

D = date(2026, 10, 31)
MODELS = [
    "collections_buckets_daily",
    "collections_dpd_daily",
    "collections_by_collector",
    "collections_roll_rates",
]


def rows(engine, sql):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_collections_models_summarise_buckets_dpd_collectors_and_roll_rates(
    db,
    analytics_role,  # noqa: F811
):
    with db.begin() as conn:
        add_collectors(conn, "asha")
        add_loan(conn, [(D - timedelta(days=1), 100_00)], collector="asha")  # 1-30 on D
        late = add_loan(conn, [(D - timedelta(days=40), 100_00)], collector="asha")
        add_loan(conn, [(D + timedelta(days=20), 100_00)])
        pay(conn, late, 30_00, D)
    days = [D - timedelta(days=2), D - timedelta(days=1), D]
    run_dpd(db, days, run_id="test")
    with db.begin() as conn:
        compute_scores(conn, D)

    role_url, _ = analytics_role
    keys = [dg.AssetKey(["analytics", m]) for m in MODELS]
    result = dg.materialize(
        [analytics_dbt_models],
        selection=dg.AssetSelection.assets(*keys).upstream(depth=1) - dg.AssetSelection.groups(
            "platform_tables"),
        resources={"dbt": dbt_resource(), "database": DatabaseResource(url=role_url)},
        instance=dg.DagsterInstance.ephemeral(),
    )  # fmt: skip
    assert result.success

    assert rows(db, "SELECT bucket, loans, outstanding_minor, overdue_minor, average_dpd "
                    "FROM analytics.collections_buckets_daily WHERE business_date = '2026-10-31' "
                    "AND loans > 0 ORDER BY bucket") == [
        ("1-30", 1, 100_00, 100_00, Decimal("1.00")),
        ("31-60", 1, 70_00, 70_00, Decimal("40.00")),
        ("current", 1, 100_00, 0, Decimal("0.00")),
    ]  # fmt: skip
    assert rows(db, "SELECT loans, delinquent_loans, average_dpd, average_dpd_delinquent, "
                    "delinquency_rate FROM analytics.collections_dpd_daily "
                    "WHERE business_date = '2026-10-31'") == [
        (3, 2, Decimal("13.67"), Decimal("20.50"), Decimal("0.6667"))
    ]  # fmt: skip
    assert rows(db, "SELECT collector_id, bucket, assigned_loans, overdue_minor, "
                    "collected_minor, collection_rate FROM analytics.collections_by_collector "
                    "ORDER BY bucket") == [
        ("asha", "31-60", 1, 70_00, 30_00, Decimal("0.3000")),
        ("asha", "current", 1, 100_00, 0, Decimal("0.0000")),
    ]  # fmt: skip
    assert rows(db, "SELECT from_bucket, to_bucket, loans, share_of_from_bucket "
                    "FROM analytics.collections_roll_rates WHERE period = 'day' "
                    "AND to_date = '2026-10-31' ORDER BY 1, 2") == [
        ("31-60", "31-60", 1, Decimal("1.0000")),
        ("current", "1-30", 1, Decimal("0.5000")),
        ("current", "current", 1, Decimal("0.5000")),
    ]  # fmt: skip
