"""Payout automation: the schedule runs a payout date's own partition at its 02:00 UTC and
skips while CRON_ENABLED is off; a failed payout run alerts; the demo seed is idempotent and a
backfill of its payout date pays the documented creators through the sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import httpx
import respx
import sqlalchemy as sa

from lending_dev.seed.payouts import last_payout_date, seed_payouts
from lending_pipelines.assets.payouts.jobs import creator_payouts_schedule, payout_retry_schedule
from lending_pipelines.assets.payouts.partitions import payout_partitions
from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.db.flags import set_flag
from lending_pipelines.resources.alerts import AlertsResource
from lending_pipelines.resources.database import DatabaseResource
from lending_pipelines.sensors.run_failures import payouts_run_failure_alert
from tests.e2e.test_payouts_e2e import (
    assert_no_duplicate_transfers,
    items_by_ref,
    payout_resources,
    payout_settings,  # noqa: F401  (fixture)
    run_payouts,
)


def test_the_schedule_runs_the_payout_dates_own_partition(database):
    for tick, key in (
        (datetime(2026, 2, 15, 2, tzinfo=UTC), "2026-02-15"),
        (datetime(2026, 3, 1, 2, tzinfo=UTC), "2026-03-01"),
    ):
        context = dg.build_schedule_context(
            scheduled_execution_time=tick, resources={"database": database}
        )
        request = creator_payouts_schedule(context)
        assert (request.partition_key, request.run_key) == (key, key)
    assert payout_partitions.get_partition_keys(
        current_time=datetime(2026, 3, 1, 2, 0, 1, tzinfo=UTC)
    )[-2:] == ["2026-02-15", "2026-03-01"]


def test_schedules_skip_while_cron_is_off(db, database):
    with db.begin() as conn:
        set_flag(conn, "CRON_ENABLED", False, "ops@example.com", reason="incident")
    tick = datetime(2026, 2, 15, 2, tzinfo=UTC)
    for schedule in (creator_payouts_schedule, payout_retry_schedule):
        context = dg.build_schedule_context(
            scheduled_execution_time=tick, resources={"database": database}
        )
        skipped = schedule(context)
        assert isinstance(skipped, dg.SkipReason) and "CRON_ENABLED" in skipped.skip_message


def test_a_failed_payout_run_sends_an_alert_naming_the_date_and_run(db, db_url, sandbox):
    resources = payout_resources(db_url, sandbox, api_key="rk_live_refused_key_000000")
    with db.begin() as conn:  # one candidate, so the (refused) account check happens
        ids = payouts_db.upsert_creators(
            conn,
            [
                {
                    "external_ref": "x",
                    "display_name": "x",
                    "kyc_status": "verified",
                    "stripe_account_id": "acct_1DevCreatorReady01",
                }
            ],
        )
        payouts_db.add_ledger_entries(
            conn,
            [
                {
                    "creator_id": ids["x"],
                    "entry_type": "earning",
                    "tokens": 500,
                    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                }
            ],
            hold_days=7,
        )
    instance = dg.DagsterInstance.ephemeral()
    failed = run_payouts(resources, instance=instance, raise_on_error=False)
    assert not failed.success
    hook = "https://hooks.example.test/services/payouts"
    with respx.mock:
        route = respx.post(hook).mock(return_value=httpx.Response(200))
        context = dg.build_run_status_sensor_context(
            sensor_name="payouts_run_failure_alert",
            dagster_event=failed.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources={
                "alerts": AlertsResource(webhook_url=hook),
                "database": DatabaseResource(url=db_url),
            },
        ).for_run_failure()
        payouts_run_failure_alert(context)
    payload = json.loads(route.calls.last.request.content)
    assert payload["text"] == "[ERROR] Creator payout run failed: creator_payouts_job 2026-01-15"
    fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
    assert fields["run_id"] == failed.run_id
    assert "rk_live_refused_key_000000" not in route.calls.last.request.content.decode()


def test_the_demo_seed_is_idempotent_and_its_payout_date_pays_the_documented_creators(
    db,
    db_url,
    sandbox,
    settings,
    payout_settings,  # noqa: F811
):
    with db.begin() as conn:
        seed_payouts(conn, settings)
    with db.begin() as conn:
        seed_payouts(conn, settings)
    with db.connect() as conn:
        counts = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM lending.creators),"
                " (SELECT count(*) FROM lending.ledger_entries),"
                " (SELECT count(*) FROM lending.withdrawal_requests)"
            )
        ).one()
        anchor = last_payout_date(
            conn.execute(sa.select(sa.func.min(payouts_db.creators.c.created_at))).scalar_one()
        )
    assert tuple(counts) == (10, 13, 1)

    result = run_payouts(payout_resources(db_url, sandbox), anchor.date().isoformat())
    assert result.success
    paid = {ref: row.amount_minor for ref, row in items_by_ref(db).items()}
    assert paid == {"CR-001": 12_000, "CR-002": 4_250, "CR-003": 3_200, "CR-006": 2_500}
    assert_no_duplicate_transfers(sandbox)
    with db.connect() as conn:
        refs = dict(
            conn.execute(
                sa.select(payouts_db.creators.c.id, payouts_db.creators.c.external_ref)
            ).all()
        )
        reasons = {
            refs[row.creator_id]: row.reason
            for row in payouts_db.eligibility_rows(conn, anchor.date())
            if row.reason
        }
    assert reasons == {
        "CR-004": "held_for_chargebacks",
        "CR-005": "below_minimum",
        "CR-007": "payouts_disabled",
        "CR-008": "payouts_disabled",
        "CR-009": "kyc_not_verified",
        "CR-010": "no_connect_account",
    }
