"""Collector scores on a hand-made book, and the kill switches: each flag flipped in
lending.feature_flags takes effect at the next run or tick, without a restart."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_pipelines.assets.collections.assets import COLLECTIONS_ASSETS
from lending_pipelines.assets.collections.jobs import (
    COLLECTIONS_JOBS,
    collection_reminders_hourly,
    collections_dpd_daily,
)
from lending_pipelines.db.collections.tables import collector_scores, legal_escalations
from lending_pipelines.db.flags import set_flag
from lending_pipelines.resources.alerts import AlertsResource
from lending_pipelines.resources.collections_config import CollectionsConfig
from lending_pipelines.sensors.collections_guard import collections_guard_sensor
from lending_pipelines.sensors.payment_files import payment_files_sensor
from tests.collections_book import (
    add_collectors,
    add_loan,
    collections_resources,
    loan_state,
    pay,
    run_job,
)

D = date(2026, 10, 31)
DAILY = "collections_daily_job"


@pytest.fixture
def defs(database):
    return dg.Definitions(
        assets=COLLECTIONS_ASSETS,
        jobs=COLLECTIONS_JOBS,
        resources=collections_resources(database),
    )


@pytest.fixture
def book(db):
    with db.begin() as conn:
        add_collectors(conn, "asha", "ravi")
        loans = {
            "asha_late": add_loan(conn, [(D - timedelta(days=10), 1000_00)], collector="asha"),
            "asha_old": add_loan(conn, [(D - timedelta(days=40), 1000_00)], collector="asha"),
            "ravi_late": add_loan(conn, [(D - timedelta(days=5), 300_00)], collector="ravi"),
            "unassigned_95": add_loan(conn, [(D - timedelta(days=95), 300_00)]),
        }
        pay(conn, loans["asha_late"], 400_00, D)
    return loans


def flip(db, flag: str, enabled: bool) -> None:
    with db.begin() as conn:
        set_flag(conn, flag, enabled, "ops@example.com", "test")


def materialization_metadata(result, asset: str) -> dict:
    (event,) = [
        e for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    ]  # fmt: skip
    return {k: v.value for k, v in event.materialization.metadata.items()}


def scores(db, day: date) -> list[tuple]:
    with db.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(
                    collector_scores.c.collector_id, collector_scores.c.bucket,
                    collector_scores.c.assigned_loans, collector_scores.c.overdue_minor,
                    collector_scores.c.collected_minor,
                ).where(collector_scores.c.business_date == day)
                .order_by("collector_id", "bucket")
            )
        ]  # fmt: skip


def test_scores_credit_each_collector_by_the_bucket_the_loan_started_the_day_in(db, defs, book):
    assert run_job(defs, DAILY, partition_key=(D - timedelta(days=1)).isoformat()).success
    assert run_job(defs, DAILY, partition_key=D.isoformat()).success
    assert scores(db, D) == [
        ("asha", "1-30", 1, 600_00, 400_00),
        ("asha", "31-60", 1, 1000_00, 0),
        ("ravi", "1-30", 1, 300_00, 0),
    ]


def test_escalation_and_scoring_switches_take_effect_at_the_next_run(db, defs, book):
    flip(db, "ESCALATION_ENABLED", False)
    flip(db, "SCORING_ENABLED", False)
    off = run_job(defs, DAILY, partition_key=D.isoformat())
    assert off.success
    for asset, flag in (("legal_escalations", "ESCALATION_ENABLED"),
                        ("collector_scores", "SCORING_ENABLED")):  # fmt: skip
        meta = materialization_metadata(off, asset)
        assert meta["skipped"] is True and meta["reason"].startswith(f"{flag} is off")
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(legal_escalations)).scalar() == 0
        assert loan_state(conn, book["unassigned_95"]) == (95, "90+", "ACTIVE")
    assert scores(db, D) == []

    flip(db, "ESCALATION_ENABLED", True)
    flip(db, "SCORING_ENABLED", True)
    on = run_job(defs, DAILY, partition_key=D.isoformat())
    assert materialization_metadata(on, "legal_escalations")["escalated"] == 1
    with db.connect() as conn:
        assert loan_state(conn, book["unassigned_95"]) == (95, "90+", "LEGAL")
    # no day computed before D: every loan started the day in "current"
    assert scores(db, D) == [
        ("asha", "current", 2, 1600_00, 400_00),
        ("ravi", "current", 1, 300_00, 0),
    ]


def test_cron_enabled_off_skips_every_collections_schedule_and_sensor(db, database, tmp_path):
    resources = {
        "database": database,
        "alerts": AlertsResource(),
        "collections_config": CollectionsConfig(inbox_path=str(tmp_path)),
    }
    (tmp_path / "bank.csv").write_text("utr,loan_id,amount,paid_on\n")
    flip(db, "CRON_ENABLED", False)
    at = datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo("Asia/Kolkata"))
    schedule_context = dg.build_schedule_context(resources=resources, scheduled_execution_time=at)
    assert "CRON_ENABLED is off" in collections_dpd_daily(schedule_context).skip_message
    assert "CRON_ENABLED is off" in collection_reminders_hourly(schedule_context).skip_message
    for sensor in (payment_files_sensor, collections_guard_sensor):
        context = dg.build_sensor_context(
            resources=resources, instance=dg.DagsterInstance.ephemeral()
        )
        assert "CRON_ENABLED is off" in sensor(context).skip_message

    flip(db, "CRON_ENABLED", True)
    request = collections_dpd_daily(
        dg.build_schedule_context(resources=resources, scheduled_execution_time=at)
    )
    assert (request.partition_key, request.run_key) == (
        "2026-10-31",
        "collections_daily:2026-10-31",
    )
    context = dg.build_sensor_context(resources=resources, instance=dg.DagsterInstance.ephemeral())
    (file_request,) = payment_files_sensor(context)
    assert file_request.run_key.startswith("payment_file:")
