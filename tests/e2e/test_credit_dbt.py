"""The credit risk dashboard in dbt: built from the platform tables' staging views, bucket
totals reconciling with what is owed (a dbt test shown as an asset check), at-risk retailers."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from lending_pipelines.analytics_dbt import dbt_resource
from lending_pipelines.assets.analytics.assets import analytics_dbt_models
from lending_pipelines.assets.credit.partitions import today
from lending_pipelines.db.credit.exposure import outstanding_by_bucket
from lending_pipelines.resources.database import DatabaseResource
from tests.credit_book import add_debit, add_retailer, at, day_before

DAY = today()
MODELS = [
    "stg_lending__retailers",
    "stg_lending__credit_accounts",
    "stg_lending__credit_transactions",
    "credit_outstanding_by_retailer",
    "credit_outstanding_by_bucket",
    "credit_at_risk_retailers",
]


def test_the_risk_dashboard_models_reconcile_with_the_book_and_name_the_at_risk_retailers(
    db, db_url
):
    with db.begin() as conn:
        add_retailer(conn, "r-ok", number="+919800000061", limit=100_000)
        add_retailer(conn, "r-late", number="+919800000062", limit=100_000)
        add_retailer(conn, "r-over", number="+919800000063", limit=10_000)
        add_debit(
            conn, "r-ok", 20_000, created=at(day_before(DAY, 3)), due=DAY + timedelta(days=11)
        )
        add_debit(conn, "r-late", 7_000, created=at(day_before(DAY, 60)), due=day_before(DAY, 46))
        add_debit(conn, "r-late", 3_000, created=at(day_before(DAY, 110)), due=day_before(DAY, 96))
        add_debit(conn, "r-over", 15_000, created=at(day_before(DAY, 10)), due=day_before(DAY, 2))
        expected = {
            b["bucket"]: b["amount"]
            for b in outstanding_by_bucket(conn, business_date=DAY, bounds=(30, 60, 90))
            if b["amount"]
        }
    result = dg.materialize(
        [analytics_dbt_models],
        selection=dg.AssetSelection.keys(*[dg.AssetKey(["analytics", m]) for m in MODELS]),
        resources={"dbt": dbt_resource(), "database": DatabaseResource(url=db_url)},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["credit_buckets_reconcile_with_outstanding"] is True
    with db.connect() as conn:
        buckets = dict(
            conn.execute(
                sa.text(
                    "SELECT bucket, outstanding_minor FROM analytics.credit_outstanding_by_bucket"
                )
            ).all()
        )
        at_risk = conn.execute(
            sa.text(
                "SELECT retailer_id, past_30_days_minor, over_limit_minor "
                "FROM analytics.credit_at_risk_retailers ORDER BY retailer_id"
            )
        ).all()
    assert buckets == expected == {"current": 20_000, "1-30": 15_000, "31-60": 7_000, "90+": 3_000}
    assert [tuple(r) for r in at_risk] == [("r-late", 10_000, -90_000), ("r-over", 0, 5_000)]
