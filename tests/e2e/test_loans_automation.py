"""Schedules, sensors, checks and alerts of workflow 1, evaluated through Dagster's contexts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_pipelines.assets.loans.checks import (
    disbursement_success_rate,
    new_loans_tracked_recently,
    no_partner_failing_for_an_hour,
    no_stuck_disbursements,
    polling_success_rate,
)
from lending_pipelines.assets.loans.jobs import (
    disbursement_retry_schedule,
    loan_polling_schedule,
)
from lending_pipelines.db import loans as loans_db
from lending_pipelines.db.flags import set_flag
from lending_pipelines.db.inbound import store_event
from lending_pipelines.definitions import defs
from lending_pipelines.instance import SERIAL_TAG
from lending_pipelines.resources.database import DatabaseResource
from lending_pipelines.resources.mpesa import MpesaResource
from lending_pipelines.sensors.mpesa_results import mpesa_results_sensor
from lending_pipelines.sensors.run_failures import loans_run_failure_alert
from lending_pipelines.settings import get_settings
from tests.loans_world import *  # noqa: F403
from tests.loans_world import SENT_ALERTS, RecordingAlerts

SCHEDULES = [loan_polling_schedule, disbursement_retry_schedule]
NOW = datetime.now(UTC)


def schedule_context(world, when=NOW):
    return dg.build_schedule_context(resources=world.resources(), scheduled_execution_time=when)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_schedules_request_one_run_per_tick(world, schedule):
    request = schedule(schedule_context(world))
    assert isinstance(request, dg.RunRequest)
    assert request.run_key.endswith(NOW.isoformat())
    again = schedule(schedule_context(world, NOW + timedelta(minutes=5)))
    assert again.run_key != request.run_key


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_schedules_skip_with_a_reason_when_cron_is_disabled_in_the_environment(
    world, monkeypatch, schedule
):
    monkeypatch.setenv("CRON_ENABLED", "false")
    get_settings.cache_clear()
    skip = schedule(schedule_context(world))
    assert isinstance(skip, dg.SkipReason) and "CRON_ENABLED" in skip.skip_message


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_schedules_skip_when_cron_is_switched_off_in_the_flags_table(world, schedule):
    with world.engine.begin() as conn:
        set_flag(conn, "CRON_ENABLED", False, updated_by="ops@example.test", reason="incident")
    assert isinstance(schedule(schedule_context(world)), dg.SkipReason)


def store_result(world, ocid: str, code: int = 0) -> None:
    payload = {
        "Result": {
            "ResultType": 0,
            "ResultCode": code,
            "ResultDesc": "done",
            "OriginatorConversationID": ocid,
            "ConversationID": f"AG_{ocid}",
            "TransactionID": "SX00000001",
        }
    }
    with world.engine.begin() as conn:
        store_event(conn, "mpesa", f"result:AG_{ocid}", payload, "mpesa.result")


def test_the_results_sensor_skips_when_nothing_waits_and_requests_a_run_when_callbacks_do(world):
    context = dg.build_sensor_context(instance=world.instance, resources=world.resources())
    assert "no unapplied" in mpesa_results_sensor(context).skip_message
    store_result(world, "acme-L1-T1-A1")
    assert isinstance(mpesa_results_sensor(context), dg.RunRequest)


def test_the_results_sensor_does_not_pile_up_runs_while_one_is_in_flight(world):
    store_result(world, "acme-L1-T1-A1")
    world.instance.add_run(
        dg.DagsterRun(job_name="mpesa_results_job", run_id="r1", status=dg.DagsterRunStatus.STARTED)
    )
    context = dg.build_sensor_context(instance=world.instance, resources=world.resources())
    skip = mpesa_results_sensor(context)
    assert isinstance(skip, dg.SkipReason) and "already applying" in skip.skip_message


def test_the_results_sensor_skips_while_cron_is_disabled(world, monkeypatch):
    store_result(world, "acme-L1-T1-A1")
    monkeypatch.setenv("CRON_ENABLED", "false")
    get_settings.cache_clear()
    context = dg.build_sensor_context(instance=world.instance, resources=world.resources())
    assert "CRON_ENABLED" in mpesa_results_sensor(context).skip_message


def test_an_unknown_or_malformed_callback_is_kept_with_an_error_not_lost(world):
    store_result(world, "never-sent-1")
    with world.engine.begin() as conn:
        store_event(conn, "mpesa", "result:garbage", {"Result": "nope"}, "mpesa.result")
    assert world.run("mpesa_results_job").success
    with world.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT event_id, processed_at, error FROM lending.inbound_events")
        ).all()
    errors = {row.event_id: row.error for row in rows}
    assert all(row.processed_at for row in rows)
    assert "never-sent-1" in errors["result:AG_never-sent-1"]
    assert "'Result'" in errors["result:garbage"]
    assert any(a["severity"] == "critical" and "never-sent-1" in a["text"] for a in SENT_ALERTS)


def test_a_failed_run_of_the_workflow_alerts(world):
    world.sandbox.configure(
        "fineract", {"tenants": [{"id": "acme", "password": "acme-pass", "loans": 1}]}
    )
    world.add_partner("acme")
    with world.engine.begin() as conn:  # a request waiting to be sent...
        conn.execute(
            sa.text(
                "INSERT INTO lending.loan_tracking (partner_id, fineract_loan_id, "
                "loan_product_id, status_id, principal, currency) "
                "VALUES ('acme', 1, 1, 200, 1000, 'KES')"
            )
        )
        assert len(loans_db.create_disbursement_requests(conn)) == 1
    broken = world.resources()
    broken["mpesa"] = MpesaResource(base_url=world.sandbox.url("mpesa"))  # ...but no ResultURL
    result = world.run("disbursement_retry_job", raise_on_error=False, resources=broken)
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="loans_run_failure_alert",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=world.instance,
        dagster_run=result.dagster_run,
        resources={"alerts": RecordingAlerts(), "database": DatabaseResource(url=world.db_url)},
    ).for_run_failure()
    loans_run_failure_alert(context)
    [alert] = SENT_ALERTS
    assert alert["title"] == "Loans workflow run failed: disbursement_retry_job"

    with world.engine.begin() as conn:  # the kill switch pauses alerts like every sensor
        set_flag(conn, "CRON_ENABLED", False, "ops@example.com")
    SENT_ALERTS.clear()
    skipped = loans_run_failure_alert(context)
    assert isinstance(skipped, dg.SkipReason) and "CRON_ENABLED" in skipped.skip_message
    assert SENT_ALERTS == []
    assert len(world.sandbox.state("mpesa")["payments"]) == 0  # nothing was sent without it


# --- checks --------------------------------------------------------------------------------


def add_attempts(world, partner: str, results: list[tuple[int, bool]]) -> None:
    """(minutes ago, ok) poll attempts for a partner."""
    with world.engine.begin() as conn:
        for minutes, ok in results:
            started = datetime.now(UTC) - timedelta(minutes=minutes)
            conn.execute(
                sa.insert(loans_db.poll_attempts).values(
                    partner_id=partner, started_at=started, finished_at=started, ok=ok,
                    error=None if ok else f"{partner}: HTTP 500",
                )
            )  # fmt: skip


def evaluate(check, world) -> dg.AssetCheckResult:
    resources = world.resources()
    return check(
        database=resources["database"],
        alerts=resources["alerts"],
        loans_config=resources["loans_config"],
    )


def test_polling_error_rate_above_10_percent_fails_and_alerts(world):
    world.add_partner("acme")
    add_attempts(world, "acme", [(m, m % 4 != 0) for m in range(1, 41)])  # 10 of 40 failed
    result = evaluate(polling_success_rate, world)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert SENT_ALERTS and SENT_ALERTS[0]["title"] == "Loan polling error rate too high"


def test_polling_success_below_95_percent_only_warns(world):
    world.add_partner("acme")
    add_attempts(world, "acme", [(m, m % 15 != 0) for m in range(1, 31)])  # 2 of 30 failed
    result = evaluate(polling_success_rate, world)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN


def test_polling_that_mostly_works_passes(world):
    world.add_partner("acme")
    add_attempts(world, "acme", [(m, True) for m in range(1, 30)] + [(90, False)])
    assert evaluate(polling_success_rate, world).passed and not SENT_ALERTS


def test_a_partner_failing_every_poll_for_an_hour_is_named(world):
    world.add_partner("acme")
    world.add_partner("kilimo")
    add_attempts(world, "acme", [(70, True), (50, False), (10, False)])  # failing for 50 min
    add_attempts(world, "kilimo", [(90, True), (75, False), (30, False), (5, False)])
    result = evaluate(no_partner_failing_for_an_hour, world)
    assert not result.passed and result.metadata["failing_partners"].value == "kilimo"
    assert "kilimo" in SENT_ALERTS[0]["text"]


def test_no_new_loan_in_24_hours_fails(world):
    world.add_partner("acme")
    with world.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO lending.loan_tracking (partner_id, fineract_loan_id, status_id, "
                "principal, currency, first_seen_at) VALUES ('acme', 1, 200, 1000, 'KES', "
                "now() - interval '25 hours')"
            )
        )
    assert not evaluate(new_loans_tracked_recently, world).passed
    with world.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO lending.loan_tracking (partner_id, fineract_loan_id, status_id, "
                "principal, currency) VALUES ('acme', 2, 200, 1000, 'KES')"
            )
        )
    assert evaluate(new_loans_tracked_recently, world).passed


def seed_requests(world, statuses: list[tuple[str, bool]], created_minutes_ago: int = 0) -> None:
    world.add_partner("acme")
    with world.engine.begin() as conn:
        for n, (status, retryable) in enumerate(statuses, start=1):
            tracking_id = conn.execute(
                sa.insert(loans_db.loan_tracking)
                .values(partner_id="acme", fineract_loan_id=n, status_id=200,
                        principal=Decimal(1000), currency="KES")
                .returning(loans_db.loan_tracking.c.id)
            ).scalar()  # fmt: skip
            created = datetime.now(UTC) - timedelta(minutes=created_minutes_ago)
            conn.execute(
                sa.insert(loans_db.disbursement_requests).values(
                    partner_id="acme", fineract_loan_id=n, loan_tracking_id=tracking_id,
                    status=status, retryable=retryable, amount_minor=100_000, currency="KES",
                    mpesa_transaction_id="SX1" if status == "succeeded" else None,
                    resolved_at=datetime.now(UTC) if status in ("succeeded", "failed") else None,
                    fineract_recorded_at=datetime.now(UTC) if status == "succeeded" else None,
                    created_at=created,
                )
            )  # fmt: skip


def test_disbursement_success_rate_below_90_percent_fails_and_alerts(world):
    seed_requests(world, [("succeeded", False)] * 8 + [("failed", False)] * 2)
    result = evaluate(disbursement_success_rate, world)
    assert not result.passed and "8/10" in result.description
    assert SENT_ALERTS[0]["title"] == "Auto-disbursement success rate too low"


def test_retryable_failures_do_not_count_against_the_success_rate_yet(world):
    seed_requests(world, [("succeeded", False)] * 9 + [("failed", True)] * 3)
    assert evaluate(disbursement_success_rate, world).passed


def test_disbursements_stuck_for_more_than_an_hour_fail_the_check(world):
    seed_requests(world, [("submitted", False), ("unknown", False)], created_minutes_ago=61)
    result = evaluate(no_stuck_disbursements, world)
    assert not result.passed and result.metadata["stuck"].value == 2


def test_recent_open_disbursements_are_not_stuck(world):
    seed_requests(world, [("submitted", False)], created_minutes_ago=5)
    assert evaluate(no_stuck_disbursements, world).passed


def test_each_loans_job_runs_one_at_a_time():
    for name in ("loan_polling_job", "disbursement_retry_job", "mpesa_results_job"):
        assert defs.resolve_job_def(name).tags[SERIAL_TAG] == name


def test_a_partner_answering_401_for_90_minutes_alerts_once_not_on_every_poll(world):
    world.add_partner("acme")
    add_attempts(world, "acme", [(95, True), (80, False), (40, False), (5, False)])
    for _ in range(9):  # one evaluation per poll
        assert not evaluate(no_partner_failing_for_an_hour, world).passed
    assert [alert["title"] for alert in SENT_ALERTS] == ["Partner failing every poll"]
    add_attempts(world, "acme", [(1, True)])
    assert evaluate(no_partner_failing_for_an_hour, world).passed
    assert evaluate(no_partner_failing_for_an_hour, world).passed
    assert [alert["title"] for alert in SENT_ALERTS] == [
        "Partner failing every poll",
        "Resolved: Partner failing every poll",
    ]
