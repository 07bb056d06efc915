"""Retailer insights through Dagster: one row per active retailer for the partition's period,
figures computed set-based, the message from the domain function; a day can be recomputed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_pipelines.assets.credit import CREDIT_ASSETS
from lending_pipelines.assets.credit.jobs import CREDIT_JOBS
from lending_pipelines.assets.credit.partitions import today
from lending_pipelines.resources.credit_config import CreditConfig
from lending_pipelines.resources.whatsapp import WhatsAppResource
from tests.credit_book import add_debit, add_order, add_retailer, at, day_before

DAY = today() - timedelta(days=1)
RICE = {"name": "Rice", "qty": 5, "amount": 5_000}
DAL = {"name": "Dal", "qty": 7, "amount": 3_000}
OIL = {"name": "Oil", "qty": 2, "amount": 4_000}


@pytest.fixture
def book(db):
    with db.begin() as conn:
        add_retailer(conn, "r-none", number="+919800000031", name="Neha", limit=100_000)
        add_retailer(conn, "r-cod", number="+919800000032", name="Chetan", limit=0)
        add_retailer(conn, "r-due", number="+919800000033", name="Divya", limit=200_000)
        add_retailer(conn, "r-mixed", number="+919800000034", name="Manoj", limit=100_000)
        add_retailer(conn, "r-blocked", number="+919800000035", status="BLOCKED")
        for days_ago in (2, 40):  # the second is outside the 30-day period
            add_order(
                conn,
                "r-cod",
                10_000,
                created=at(day_before(DAY, days_ago)),
                mode="COD",
                items=[RICE],
            )
        order = add_order(conn, "r-due", 30_000, created=at(day_before(DAY, 20)), items=[DAL, OIL])
        add_debit(
            conn,
            "r-due",
            30_000,
            created=at(day_before(DAY, 20)),
            due=day_before(DAY, 6),
            order_id=order,
            status="CLEARED",
            cleared=30_000,
            cleared_at=at(day_before(DAY, 6), 23),
        )  # 23:00 local on the due date
        for amount, items in ((20_000, [RICE, OIL]), (10_001, [OIL]), (7_000, [DAL])):
            add_order(conn, "r-mixed", amount, created=at(day_before(DAY, 3)), items=items)
        add_order(conn, "r-mixed", 50_000, created=at(day_before(DAY, 3)), status="FAILED")
        add_debit(
            conn,
            "r-mixed",
            20_000,
            created=at(day_before(DAY, 25)),
            due=day_before(DAY, 11),
            status="CLEARED",
            cleared=20_000,
            cleared_at=at(day_before(DAY, 9)),
        )
        add_debit(
            conn, "r-mixed", 25_000, created=at(day_before(DAY, 3)), due=DAY + timedelta(days=11)
        )
    return db


@pytest.fixture
def defs(database):
    return dg.Definitions(
        assets=CREDIT_ASSETS,
        jobs=CREDIT_JOBS,
        resources={
            "database": database,
            "credit_config": CreditConfig(),
            # insights send nothing: a Twilio nobody listens on proves it
            "whatsapp": WhatsAppResource(
                account_sid="AC" + "0" * 32,
                auth_token="unused",
                from_number="+14155238886",
                base_url="http://127.0.0.1:9",
            ),
        },
    )


def insights(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT * FROM lending.retailer_insights ORDER BY retailer_id")
        ).mappings()
        return {row["retailer_id"]: dict(row) for row in rows}


def run(defs, day):
    return defs.resolve_job_def("retailer_insights_job").execute_in_process(
        partition_key=day.isoformat(), instance=dg.DagsterInstance.ephemeral()
    )


CASES = {
    # retailer: (orders, spend, average, top products, repayments, on-time rate, utilisation)
    "r-none": (0, 0, None, [], 0, None, Decimal("0.0000")),
    "r-cod": (1, 10_000, 10_000, ["Rice"], 0, None, None),
    "r-due": (1, 30_000, 30_000, ["Dal", "Oil"], 1, Decimal("1.0000"), Decimal("0.0000")),
    # repaid two days late; a failed order is not counted
    "r-mixed": (3, 37_001, 12_334, ["Dal", "Rice", "Oil"], 1, Decimal("0.0000"), Decimal("0.2500")),
}


def test_insights_are_one_row_per_active_retailer_with_the_figures_and_a_friendly_message(
    book, defs
):
    result = run(defs, DAY)
    assert result.success
    rows = insights(book)
    assert set(rows) == set(CASES)  # the blocked retailer gets none
    for retailer_id, expected in CASES.items():
        row = rows[retailer_id]
        found = (
            row["orders_count"],
            row["spend"],
            row["average_order_value"],
            row["top_products"],
            row["repayments_count"],
            row["on_time_rate"],
            row["utilisation"],
        )
        assert found == expected, retailer_id
        assert (row["period_start"], row["period_end"]) == (day_before(DAY, 29), DAY)
    assert rows["r-none"]["message"] == (
        "Hi Neha, no orders in the last 30 days. Your credit of INR 1,000.00 is ready when you are."
    )
    assert rows["r-cod"]["message"] == (
        "Hi Chetan, 1 order in the last 30 days, INR 100.00 in total. Top items: Rice."
    )
    assert "Every repayment on time" in rows["r-due"]["message"]
    assert "%" not in rows["r-none"]["message"] + rows["r-cod"]["message"]
    (event,) = result.asset_materializations_for_node("retailer_insights")
    assert event.metadata["retailers"].value == 4


def test_a_day_can_be_recomputed_and_other_days_stay(book, defs):
    run(defs, DAY)
    run(defs, DAY - timedelta(days=1))
    with book.begin() as conn:
        add_order(conn, "r-none", 5_000, created=at(DAY), mode="COD")
    run(defs, DAY)
    rows = insights(book)
    assert rows["r-none"]["orders_count"] == 1
    with book.connect() as conn:
        per_day = dict(
            conn.execute(
                sa.text("SELECT period_end, count(*) FROM lending.retailer_insights GROUP BY 1")
            ).all()
        )
    assert per_day == {DAY: 4, DAY - timedelta(days=1): 4}
