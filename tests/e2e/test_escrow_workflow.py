"""Workflow 4 end to end through Dagster: the real assets, jobs and schedules, the real database
and the sandbox's Blnk over HTTP, starting from the demo data (`seed/escrow.py`), which has one
case per rule."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import respx
import sqlalchemy as sa

import lending_pipelines.workflows.escrow.auto_deduct as deduct_run
import lending_pipelines.workflows.escrow.release as release_run
from lending_dev.seed.escrow import (
    ESCROW_POOL,
    REPAYMENT_POOL,
    WHOLESALERS,
    seed_escrow,
    wallet_balance_id,
)
from lending_pipelines.assets.escrow.assets import ESCROW_ASSETS
from lending_pipelines.assets.escrow.jobs import (
    ESCROW_JOBS,
    auto_deduct_daily,
    escrow_auto_release_daily,
)
from lending_pipelines.assets.escrow.partitions import TIMEZONE
from lending_pipelines.db.common import audit_log
from lending_pipelines.db.escrow import (
    escrow_releases,
    escrows,
    repayments,
    retailer_debts,
    upsert_blnk_accounts,
)
from lending_pipelines.db.flags import set_flag
from lending_pipelines.resources.alerts import AlertsResource
from lending_pipelines.resources.blnk import BlnkResource
from lending_pipelines.resources.escrow_config import EscrowConfig
from lending_pipelines.sensors.run_failures import RUN_FAILURE_SENSORS, escrow_run_failure_alert
from lending_pipelines.settings import get_settings
from tests.metadata_text import shown

TODAY = datetime.now(ZoneInfo(TIMEZONE)).date().isoformat()


@pytest.fixture
def seeded(db, settings):
    with db.begin() as conn:
        seed_escrow(conn, settings)
    return db


@pytest.fixture
def defs(database, sandbox):
    blnk = BlnkResource(base_url=sandbox.url("blnk"), backoff_seconds=0.01)
    yield dg.Definitions(
        assets=ESCROW_ASSETS,
        jobs=ESCROW_JOBS,
        resources={
            "database": database,
            "blnk": blnk,
            "escrow_config": EscrowConfig.from_settings(get_settings()),
        },
    )
    blnk.close()


def run_job(defs, name, *, partition_key=None, config=None, raise_on_error=True):
    job = defs.resolve_job_def(name)
    run_config = {"ops": {job.graph.node_names()[0]: {"config": config}}} if config else None
    return job.execute_in_process(
        partition_key=partition_key,
        run_config=run_config,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def ledger(sandbox) -> dict[str, int]:
    return {b["balance_id"]: b["balance"] for b in sandbox.state("blnk")["balances"]}


def materialization(result, asset: str):
    (event,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def escrow_status(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(escrows.c.order_id, escrows.c.status)).all())


def debts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(retailer_debts.c.retailer_id, retailer_debts.c.outstanding_amount)
        )
        return dict(rows.all())


def audits(engine, action: str) -> list[dict]:
    with engine.connect() as conn:
        query = sa.select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
        return [dict(row) for row in conn.execute(query).mappings()]


# --- escrow releases ------------------------------------------------------------------------------


def test_due_escrows_are_released_to_the_right_wholesalers_and_nothing_else_moves(
    seeded, defs, sandbox
):
    before = ledger(sandbox)
    result = run_job(defs, "escrow_release_job", partition_key=TODAY)
    after = ledger(sandbox)
    # ORD-1001 (150,000) and ORD-1006 (20,000) to W-001; ORD-1002 (90,000) to W-002.
    assert after[WHOLESALERS["W-001"]] - before[WHOLESALERS["W-001"]] == 170_000
    assert after[WHOLESALERS["W-002"]] - before[WHOLESALERS["W-002"]] == 90_000
    assert before[ESCROW_POOL] - after[ESCROW_POOL] == 260_000
    assert escrow_status(seeded) == {
        "ORD-1001": "released",
        "ORD-1002": "released",
        "ORD-1003": "held",  # not due yet
        "ORD-1004": "disputed",  # never released
        "ORD-1005": "held",  # its wholesaler has no balance: skipped, reported
        "ORD-1006": "released",  # auto_release_at set earlier than the default
        "ORD-1007": "refunded",
    }
    metadata = materialization(result, "escrow_releases")
    assert metadata["moved"] == 3 and metadata["amount_by_currency"] == {"RWF": 260_000}
    assert metadata["skipped_by_reason"] == {"missing_wholesaler_balance": 1}
    assert "W-404" in shown(metadata["skipped_detail"])
    assert checks(result) == {
        "no_escrow_released_twice": True,
        "released_amounts_match_ledger": True,
    }
    released = audits(seeded, "escrow.release")
    assert len(released) == 3 and {a["actor"] for a in released} == {"dagster:escrow_release_job"}
    (skip,) = audits(seeded, "escrow.release_skipped")
    assert skip["reason"].startswith("missing_wholesaler_balance")


def test_rerunning_a_release_partition_moves_no_money(seeded, defs, sandbox):
    run_job(defs, "escrow_release_job", partition_key=TODAY)
    once = ledger(sandbox)
    result = run_job(defs, "escrow_release_job", partition_key=TODAY)
    assert ledger(sandbox) == once
    assert materialization(result, "escrow_releases")["moved"] == 0
    with seeded.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(escrow_releases)).scalar() == 3


def test_a_crash_between_the_ledger_post_and_the_local_write_is_recovered_without_moving_twice(
    seeded, defs, sandbox, monkeypatch
):
    real = release_run.record_release

    def crash_after_the_post(*args, **kwargs):
        # The ledger post has happened; the process dies before recording it.
        raise dg.Failure("simulated crash", allow_retries=False)

    monkeypatch.setattr(release_run, "record_release", crash_after_the_post)
    crashed = run_job(defs, "escrow_release_job", partition_key=TODAY, raise_on_error=False)
    assert not crashed.success
    state = sandbox.state("blnk")
    posted = [t for t in state["transactions"] if t["reference"].startswith("escrow-release:")]
    assert len(posted) == 1 and escrow_status(seeded)["ORD-1002"] == "held"
    after_crash = ledger(sandbox)

    monkeypatch.setattr(release_run, "record_release", real)
    result = run_job(defs, "escrow_release_job", partition_key=TODAY)
    state = sandbox.state("blnk")
    references = [t["reference"] for t in state["transactions"]]
    assert len(references) == len(set(references))
    assert state["rejected_duplicates"] == [posted[0]["reference"]]
    assert (
        after_crash[ESCROW_POOL] - ledger(sandbox)[ESCROW_POOL]
        == 260_000 - posted[0]["precise_amount"]
    )
    assert materialization(result, "escrow_releases")["recovered_from_ledger"] == 1
    with seeded.connect() as conn:
        recovered = (
            conn.execute(
                sa.select(escrow_releases.c.ledger_reference).where(escrow_releases.c.recovered)
            )
            .scalars()
            .all()
        )
    assert recovered == [posted[0]["reference"]]


# --- auto-deduct ---------------------------------------------------------------------------------


EXPECTED_DEDUCTIONS = {"R-001": 30_000, "R-002": 20_000, "R-003": 15_000, "R-009": 5_000}
BAD_DATA_RETAILERS = {"R-007", "R-008", "R-010", "R-012"}


def test_auto_deduct_moves_exactly_the_computed_amounts_and_skips_the_rest_with_reasons(
    seeded, defs, sandbox
):
    before_ledger, before_debts = ledger(sandbox), debts(seeded)
    result = run_job(defs, "auto_deduct_job", partition_key=TODAY)
    after = ledger(sandbox)
    for retailer, amount in EXPECTED_DEDUCTIONS.items():
        wallet = wallet_balance_id(retailer)
        assert before_ledger[wallet] - after[wallet] == amount, retailer
        assert before_debts[retailer] - debts(seeded)[retailer] == amount, retailer
    assert after[REPAYMENT_POOL] - before_ledger[REPAYMENT_POOL] == sum(
        EXPECTED_DEDUCTIONS.values()
    )
    for untouched in ("R-004", "R-005", "R-006", "R-007", "R-011"):
        assert after[wallet_balance_id(untouched)] == before_ledger[wallet_balance_id(untouched)]
        assert debts(seeded)[untouched] == before_debts[untouched]
    assert after[wallet_balance_id("R-003")] == 10_000  # exactly the minimum is kept
    metadata = materialization(result, "auto_deductions")
    assert metadata["retailers_deducted"] == 4
    assert metadata["amount_by_currency"] == {"RWF": 70_000}
    assert metadata["skipped_by_reason"] == {
        "missing_wallet_balance": 1,
        "negative_debt": 1,
        "not_wallet_currency": 1,
        "rounds_to_zero": 1,
        "unknown_currency": 1,
        "wallet_at_minimum": 1,
        "wallet_below_minimum": 1,
    }
    assert checks(result) == {"repayments_match_ledger_one_to_one": True}
    bad_data = {a["entity_id"]: a["reason"] for a in audits(seeded, "auto_deduct.skipped")}
    assert set(bad_data) == BAD_DATA_RETAILERS
    assert bad_data["R-008"] == "unknown_currency: 'XYZ'"
    assert len(audits(seeded, "auto_deduct.repayment")) == 4


def test_wallet_balances_are_read_from_the_ledger_not_a_local_copy(seeded, defs, sandbox):
    sandbox.configure(
        "blnk",
        {
            "balances": [
                {"balance_id": wallet_balance_id("R-003"), "currency": "RWF", "balance": 40_000}
            ]
        },
    )
    run_job(defs, "auto_deduct_job", partition_key=TODAY)
    assert ledger(sandbox)[wallet_balance_id("R-003")] == 10_000  # 30,000 of 40,000 taken


def test_a_wallet_missing_from_the_ledger_is_skipped_and_audited_while_others_proceed(
    seeded, defs, sandbox
):
    with seeded.begin() as conn:
        upsert_blnk_accounts(
            conn,
            [
                {
                    "owner_type": "retailer_wallet",
                    "owner_id": "R-002",
                    "currency": "RWF",
                    "balance_id": "bln_deleted_in_blnk",
                }
            ],
        )
    result = run_job(defs, "auto_deduct_job", partition_key=TODAY)
    metadata = materialization(result, "auto_deductions")
    assert metadata["retailers_deducted"] == 3
    assert metadata["skipped_by_reason"]["wallet_not_in_ledger"] == 1
    bad_data = {a["entity_id"]: a["reason"] for a in audits(seeded, "auto_deduct.skipped")}
    assert "bln_deleted_in_blnk" in bad_data["R-002"]


def test_a_ledger_outage_fails_the_run_instead_of_skipping_everyone(seeded, defs, sandbox):
    sandbox.set_faults({"blnk": {"error_rate": 1.0}})
    config = {
        "business_date": TODAY,
        "actor": "ops@example.com",
        "reason": "rerun",
        "dry_run": False,
    }
    result = run_job(defs, "auto_deduct_now_job", config=config, raise_on_error=False)
    sandbox.clear_faults()
    assert not result.success
    error = str(result.failure_data_for_node("run_auto_deduct_now").error)
    assert "transfer(s) failed" in error
    # Only the bad data is audited as skipped; the unreadable wallets are failures.
    assert {a["entity_id"] for a in audits(seeded, "auto_deduct.skipped")} == BAD_DATA_RETAILERS
    with seeded.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(repayments)).scalar() == 0


def test_rerunning_an_auto_deduct_partition_moves_no_money(seeded, defs, sandbox):
    run_job(defs, "auto_deduct_job", partition_key=TODAY)
    once, debts_once = ledger(sandbox), debts(seeded)
    result = run_job(defs, "auto_deduct_job", partition_key=TODAY)
    assert ledger(sandbox) == once and debts(seeded) == debts_once
    assert materialization(result, "auto_deductions")["moved"] == 0


def test_an_auto_deduct_crash_after_the_post_is_recovered_by_reference(
    seeded, defs, sandbox, monkeypatch
):
    real = deduct_run.apply_repayment
    before = ledger(sandbox)

    def crash_after_the_post(*args, **kwargs):
        raise dg.Failure("simulated crash", allow_retries=False)

    monkeypatch.setattr(deduct_run, "apply_repayment", crash_after_the_post)
    assert not run_job(defs, "auto_deduct_job", partition_key=TODAY, raise_on_error=False).success
    with seeded.connect() as conn:
        statuses = dict(
            conn.execute(sa.select(repayments.c.retailer_id, repayments.c.status)).all()
        )
    assert statuses == dict.fromkeys(EXPECTED_DEDUCTIONS, "pending")  # intents were stored first
    assert (
        before[wallet_balance_id("R-001")] - ledger(sandbox)[wallet_balance_id("R-001")] == 30_000
    )

    monkeypatch.setattr(deduct_run, "apply_repayment", real)
    result = run_job(defs, "auto_deduct_job", partition_key=TODAY)
    after = ledger(sandbox)
    for retailer, amount in EXPECTED_DEDUCTIONS.items():
        assert before[wallet_balance_id(retailer)] - after[wallet_balance_id(retailer)] == amount
    state = sandbox.state("blnk")
    assert state["rejected_duplicates"] == [f"auto-deduct:R-001:{TODAY}"]
    assert materialization(result, "auto_deductions")["recovered_from_ledger"] == 1
    assert debts(seeded)["R-001"] == 70_000


# --- Launchpad jobs -------------------------------------------------------------------------------


def escrow_id(engine, order_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(escrows.c.id).where(escrows.c.order_id == order_id)).scalar()


def test_release_one_escrow_now_releases_it_before_its_date_and_audits_the_actor(
    seeded, defs, sandbox
):
    target = escrow_id(seeded, "ORD-1003")
    before = ledger(sandbox)
    config = {
        "escrow_id": target,
        "actor": "ops@example.com",
        "reason": "early delivery",
        "dry_run": False,  # the job defaults to a dry run
    }
    run_job(defs, "release_escrow_now_job", config=config)
    assert ledger(sandbox)[WHOLESALERS["W-001"]] - before[WHOLESALERS["W-001"]] == 60_000
    (entry,) = audits(seeded, "escrow.release")
    assert (entry["actor"], entry["reason"], entry["entity_id"]) == (
        "ops@example.com",
        "early delivery",
        str(target),
    )


def test_a_disputed_escrow_cannot_be_released_even_by_hand(seeded, defs, sandbox):
    config = {
        "escrow_id": escrow_id(seeded, "ORD-1004"),
        "actor": "ops@example.com",
        "reason": "try",
    }
    result = run_job(defs, "release_escrow_now_job", config=config, raise_on_error=False)
    assert not result.success
    assert "not_held: disputed" in str(result.failure_data_for_node("release_escrow_now").error)
    assert escrow_status(seeded)["ORD-1004"] == "disputed"
    assert not [
        t
        for t in sandbox.state("blnk")["transactions"]
        if t["reference"].startswith("escrow-release:")
    ]


def test_manual_runs_for_a_date_default_to_a_dry_run_that_moves_nothing(seeded, defs, sandbox):
    before = ledger(sandbox)
    config = {"business_date": TODAY, "actor": "ops@example.com", "reason": "preview"}
    release = run_job(defs, "escrow_auto_release_now_job", config=config)
    deduct = run_job(defs, "auto_deduct_now_job", config=config)
    assert release.success and deduct.success
    assert ledger(sandbox) == before
    assert escrow_status(seeded)["ORD-1001"] == "held"
    (release_audit,) = audits(seeded, "escrow.auto_release.manual_run")
    assert release_audit["actor"] == "ops@example.com"
    assert release_audit["new_value"] == {
        "dry_run": True,
        "released": 0,
        "planned": 3,
        "skipped": 1,
    }
    (deduct_audit,) = audits(seeded, "auto_deduct.manual_run")
    assert deduct_audit["new_value"]["planned"] == 4
    with seeded.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(repayments)).scalar() == 0


def test_a_manual_run_for_a_date_moves_money_when_dry_run_is_off(seeded, defs, sandbox):
    config = {
        "business_date": TODAY,
        "actor": "ops@example.com",
        "reason": "missed run",
        "dry_run": False,
    }
    run_job(defs, "auto_deduct_now_job", config=config)
    assert {a["actor"] for a in audits(seeded, "auto_deduct.repayment")} == {"ops@example.com"}
    assert ledger(sandbox)[REPAYMENT_POOL] == 70_000


@pytest.mark.parametrize("business_date", ["2026-13-01", "2999-01-01"])
def test_a_manual_run_refuses_a_date_that_is_malformed_or_in_the_future(
    seeded, defs, business_date
):
    config = {"business_date": business_date, "actor": "ops@example.com", "reason": "typo"}
    result = run_job(defs, "auto_deduct_now_job", config=config, raise_on_error=False)
    assert not result.success
    assert business_date in str(result.failure_data_for_node("run_auto_deduct_now").error)


def test_marking_an_escrow_disputed_keeps_it_out_of_every_release(seeded, defs, sandbox):
    target = escrow_id(seeded, "ORD-1001")
    config = {"escrow_id": target, "actor": "risk@example.com", "reason": "wrong goods"}
    run_job(defs, "dispute_escrow_job", config=config)
    run_job(defs, "escrow_release_job", partition_key=TODAY)
    assert escrow_status(seeded)["ORD-1001"] == "disputed"
    (entry,) = audits(seeded, "escrow.dispute")
    assert (entry["actor"], entry["reason"]) == ("risk@example.com", "wrong goods")
    references = {t["reference"] for t in sandbox.state("blnk")["transactions"]}
    assert f"escrow-release:{target}" not in references


def test_disputing_an_escrow_the_ledger_already_released_records_the_release_instead(
    seeded, defs, sandbox
):
    target = escrow_id(seeded, "ORD-1002")
    BlnkResource(base_url=sandbox.url("blnk")).get_client().create_transaction(
        reference=f"escrow-release:{target}",
        source=ESCROW_POOL,
        destination=WHOLESALERS["W-002"],
        precise_amount=90_000,
        currency="RWF",
        precision=1,
        description="released by a run that crashed before recording it",
    )
    config = {"escrow_id": target, "actor": "risk@example.com", "reason": "late complaint"}
    result = run_job(defs, "dispute_escrow_job", config=config, raise_on_error=False)
    assert not result.success
    assert "already released in the ledger" in str(
        result.failure_data_for_node("dispute_escrow").error
    )
    assert escrow_status(seeded)["ORD-1002"] == "released"


# --- schedules ------------------------------------------------------------------------------------


def nairobi(*args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Africa/Nairobi"))


def test_schedules_pick_their_business_day_and_skip_while_cron_is_off(database, seeded):
    release_at = dg.build_schedule_context(
        scheduled_execution_time=nairobi(2026, 3, 2, 2, 0), resources={"database": database}
    )
    deduct_at = dg.build_schedule_context(
        scheduled_execution_time=nairobi(2026, 3, 2, 23, 0), resources={"database": database}
    )
    release = escrow_auto_release_daily(release_at)
    deduct = auto_deduct_daily(deduct_at)
    assert (release.partition_key, release.run_key) == ("2026-03-01", "escrow_releases:2026-03-01")
    assert (deduct.partition_key, deduct.run_key) == ("2026-03-02", "auto_deductions:2026-03-02")
    assert release.tags["lending/actor"] == "schedule:escrow_auto_release_daily"
    with seeded.begin() as conn:
        set_flag(conn, "CRON_ENABLED", False, "ops@example.com", reason="incident")
    for schedule, context in (
        (escrow_auto_release_daily, release_at),
        (auto_deduct_daily, deduct_at),
    ):
        skipped = schedule(context)
        assert isinstance(skipped, dg.SkipReason) and "CRON_ENABLED" in skipped.skip_message


# --- alerts -------------------------------------------------------------------------------------


def test_a_failed_escrow_run_sends_an_alert_naming_the_job_and_run(seeded, defs, database):
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("release_escrow_now_job")
    config = {"escrow_id": 424242, "actor": "ops@example.com", "reason": "test"}
    failed = job.execute_in_process(
        run_config={"ops": {"release_escrow_now": {"config": config}}},
        instance=instance,
        raise_on_error=False,
    )
    hook = "https://hooks.example.test/services/escrow"
    with respx.mock:
        route = respx.post(hook).respond(200)
        context = dg.build_run_status_sensor_context(
            sensor_name="escrow_run_failure_alert",
            dagster_event=failed.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources={"alerts": AlertsResource(webhook_url=hook), "database": database},
        ).for_run_failure()
        escrow_run_failure_alert(context)
    payload = json.loads(route.calls.last.request.content)
    assert payload["text"] == "[ERROR] Escrow workflow run failed: release_escrow_now_job"
    fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
    assert fields["run_id"] == failed.run_id
    assert escrow_run_failure_alert.name in {s.name for s in RUN_FAILURE_SENSORS}
