"""Workflow 4: what a run finds left over by earlier runs and how it reads the ledger's answers —
pending repayments from earlier days, Blnk's QUEUED answers, read-backs that differ from the
intent — and the Launchpad jobs' defaults. Real database, the sandbox's Blnk over HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

import lending_pipelines.workflows.escrow.auto_deduct as runs
from lending_dev.seed.escrow import ESCROW_POOL, WHOLESALERS, wallet_balance_id
from lending_pipelines.assets.escrow.assets import ESCROW_ASSETS
from lending_pipelines.assets.escrow.jobs import ESCROW_JOBS
from lending_pipelines.assets.escrow.partitions import TIMEZONE
from lending_pipelines.db.escrow import auto_deduct_settings, escrows, repayments
from lending_pipelines.resources.blnk import BlnkResource
from lending_pipelines.resources.escrow_config import EscrowConfig
from lending_pipelines.settings import get_settings
from tests.e2e import test_escrow_workflow as workflow
from tests.e2e.test_escrow_workflow import (
    EXPECTED_DEDUCTIONS,
    audits,
    checks,
    debts,
    escrow_id,
    escrow_status,
    ledger,
    materialization,
    run_job,
)

seeded, defs = workflow.seeded, workflow.defs  # fixtures

TODAY = datetime.now(ZoneInfo(TIMEZONE)).date()
YESTERDAY = TODAY - timedelta(days=1)


@pytest.fixture
def queued_defs(database, sandbox):
    """The workflow against a Blnk used in its default queued mode (no skip_queue)."""
    blnk = BlnkResource(base_url=sandbox.url("blnk"), backoff_seconds=0.01, skip_queue=False)
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


def repayment_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        query = sa.select(repayments).order_by(repayments.c.business_date, repayments.c.retailer_id)
        return [dict(row) for row in conn.execute(query).mappings()]


def ledger_transactions(sandbox, prefix: str) -> list[dict]:
    return [t for t in sandbox.state("blnk")["transactions"] if t["reference"].startswith(prefix)]


def crash_after_each_post(monkeypatch):
    def crash(*args, **kwargs):
        raise dg.Failure("simulated crash after the ledger post", allow_retries=False)

    monkeypatch.setattr(runs, "apply_repayment", crash)


def set_percentage(engine, retailer: str, percentage: int, max_daily: int | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(auto_deduct_settings)
            .where(auto_deduct_settings.c.retailer_id == retailer)
            .values(percentage=percentage, max_daily_amount=max_daily)
        )


def assert_debts_follow_the_ledger(engine, sandbox, before_ledger, before_debts) -> None:
    """Per retailer: wallet decrease == debt decrease == sum of applied repayments; debt >= 0."""
    after_ledger, after_debts = ledger(sandbox), debts(engine)
    applied: dict[str, int] = {}
    for row in repayment_rows(engine):
        if row["status"] == "applied":
            applied[row["retailer_id"]] = applied.get(row["retailer_id"], 0) + row["amount"]
    for retailer, amount in applied.items():
        wallet = wallet_balance_id(retailer)
        assert before_ledger[wallet] - after_ledger[wallet] == amount, retailer
        assert before_debts[retailer] - after_debts[retailer] == amount, retailer
    assert all(debt >= 0 for retailer, debt in after_debts.items() if retailer != "R-007")


# --- pending repayments from earlier days -----------------------------------------------------


def test_pending_repayment_from_yesterday_is_settled_before_todays_deductions(
    seeded, defs, sandbox, monkeypatch
):
    set_percentage(seeded, "R-001", 100, None)  # the whole debt in one day: 100,000
    before_ledger, before_debts = ledger(sandbox), debts(seeded)
    real = runs.apply_repayment
    crash_after_each_post(monkeypatch)
    crashed = run_job(
        defs, "auto_deduct_job", partition_key=YESTERDAY.isoformat(), raise_on_error=False
    )
    assert not crashed.success
    assert (
        before_ledger[wallet_balance_id("R-001")] - ledger(sandbox)[wallet_balance_id("R-001")]
        == 100_000
    )  # moved in the ledger, not recorded
    monkeypatch.setattr(runs, "apply_repayment", real)

    result = run_job(defs, "auto_deduct_job", partition_key=TODAY.isoformat())
    # Yesterday's intents were settled first, so today started from the reduced debts.
    assert {r["status"] for r in repayment_rows(seeded)} == {"applied"}
    assert debts(seeded)["R-001"] == 0
    assert (
        before_ledger[wallet_balance_id("R-001")] - ledger(sandbox)[wallet_balance_id("R-001")]
        == 100_000
    )
    today = {r["retailer_id"]: r["amount"] for r in repayment_rows(seeded)
             if r["business_date"] == TODAY}  # fmt: skip
    assert "R-001" not in today
    assert today["R-002"] == 20_000 and today["R-009"] == 2_500  # 50 % of the 5,000 left
    assert materialization(result, "auto_deductions")["recovered_from_ledger"] == 1
    assert_debts_follow_the_ledger(seeded, sandbox, before_ledger, before_debts)

    # Re-running either day moves nothing more.
    once = ledger(sandbox)
    for day in (YESTERDAY, TODAY):
        run_job(defs, "auto_deduct_job", partition_key=day.isoformat())
    assert ledger(sandbox) == once and debts(seeded)["R-001"] == 0


# --- Blnk's QUEUED answers --------------------------------------------------------------------


def test_a_queued_deduction_the_ledger_applied_is_recorded_as_applied_and_reduces_the_debt(
    seeded, queued_defs, sandbox
):
    before_ledger, before_debts = ledger(sandbox), debts(seeded)
    result = run_job(queued_defs, "auto_deduct_job", partition_key=TODAY.isoformat())
    rows = {r["retailer_id"]: r for r in repayment_rows(seeded)}
    assert {k: (v["status"], v["amount"]) for k, v in rows.items()} == {
        k: ("applied", v) for k, v in EXPECTED_DEDUCTIONS.items()
    }
    outcomes = {t["reference"]: t for t in ledger_transactions(sandbox, "auto-deduct:")}
    for retailer, row in rows.items():
        child = outcomes[f"{row['ledger_reference']}_q"]
        assert child["status"] == "APPLIED"
        assert row["ledger_transaction_id"] == child["transaction_id"]
        assert before_debts[retailer] - debts(seeded)[retailer] == EXPECTED_DEDUCTIONS[retailer]
    assert_debts_follow_the_ledger(seeded, sandbox, before_ledger, before_debts)
    assert checks(result) == {"repayments_match_ledger_one_to_one": True}


def test_a_deduction_still_in_blnks_queue_stays_pending_and_the_next_days_run_applies_it(
    seeded, queued_defs, sandbox
):
    before_ledger, before_debts = ledger(sandbox), debts(seeded)
    sandbox.configure("blnk", {"hold_queue": True})
    result = run_job(queued_defs, "auto_deduct_job", partition_key=YESTERDAY.isoformat())
    assert {r["status"] for r in repayment_rows(seeded)} == {"pending"}  # not failed
    assert debts(seeded) == before_debts
    assert materialization(result, "auto_deductions")["awaiting_ledger"] == 4

    sandbox.configure("blnk", {"hold_queue": False})  # the queue worker catches up
    run_job(queued_defs, "auto_deduct_job", partition_key=TODAY.isoformat())
    yesterday = [r for r in repayment_rows(seeded) if r["business_date"] == YESTERDAY]
    assert {r["status"] for r in yesterday} == {"applied"}
    assert debts(seeded)["R-001"] == 100_000 - 30_000 - 21_000  # today: 30 % of 70,000
    assert_debts_follow_the_ledger(seeded, sandbox, before_ledger, before_debts)
    assert sandbox.state("blnk")["queued"] == []


def test_an_escrow_whose_release_is_queued_is_recorded_released_once_the_ledger_applies_it(
    seeded, queued_defs, sandbox
):
    before = ledger(sandbox)
    sandbox.configure("blnk", {"hold_queue": True})
    first = run_job(queued_defs, "escrow_release_job", partition_key=YESTERDAY.isoformat())
    assert materialization(first, "escrow_releases")["awaiting_ledger"] >= 2
    assert escrow_status(seeded)["ORD-1002"] == "held"

    sandbox.configure("blnk", {"hold_queue": False})
    run_job(queued_defs, "escrow_release_job", partition_key=TODAY.isoformat())
    statuses = escrow_status(seeded)
    assert [statuses[o] for o in ("ORD-1001", "ORD-1002", "ORD-1006")] == ["released"] * 3
    assert before[ESCROW_POOL] - ledger(sandbox)[ESCROW_POOL] == 260_000
    applied = [t for t in ledger_transactions(sandbox, "escrow-release:")
               if t["status"] == "APPLIED"]  # fmt: skip
    assert sorted(t["reference"] for t in applied) == sorted(
        f"escrow-release:{escrow_id(seeded, o)}_q" for o in ("ORD-1001", "ORD-1002", "ORD-1006")
    )
    with seeded.connect() as conn:
        recorded = set(conn.execute(sa.select(escrows.c.ledger_transaction_id)).scalars())
    assert {t["transaction_id"] for t in applied} <= recorded


# --- read-backs that differ from the intent ------------------------------------------------------


def test_a_deduction_the_ledger_holds_with_another_amount_is_an_alert_not_an_update(
    seeded, defs, sandbox
):
    before_debts = debts(seeded)
    BlnkResource(base_url=sandbox.url("blnk")).get_client().create_transaction(
        reference=f"auto-deduct:R-001:{TODAY.isoformat()}",
        source=wallet_balance_id("R-001"),
        destination=WHOLESALERS["W-001"],  # not the repayment pool, and not our amount
        precise_amount=1_000,
        currency="RWF",
        precision=1,
        description="a transfer that is not ours",
    )
    result = run_job(defs, "auto_deduct_job", partition_key=TODAY.isoformat(), raise_on_error=False)
    assert not result.success  # the run fails, which alerts (escrow_run_failure_alert)
    row = next(r for r in repayment_rows(seeded) if r["retailer_id"] == "R-001")
    assert (row["status"], row["ledger_transaction_id"]) == ("pending", None)
    assert debts(seeded)["R-001"] == before_debts["R-001"]
    (alert,) = audits(seeded, "auto_deduct.ledger_mismatch")
    assert "precise_amount is 1000, expected 30000" in alert["reason"]
    assert "destination" in alert["reason"]
    # The others went through.
    assert debts(seeded)["R-002"] == before_debts["R-002"] - 20_000


def test_an_escrow_release_the_ledger_holds_from_another_source_is_an_alert_not_an_update(
    seeded, defs, sandbox
):
    target = escrow_id(seeded, "ORD-1002")
    BlnkResource(base_url=sandbox.url("blnk")).get_client().create_transaction(
        reference=f"escrow-release:{target}",
        source="@World",
        destination=WHOLESALERS["W-002"],
        precise_amount=90_000,
        currency="RWF",
        precision=1,
        description="not from the escrow pool",
    )
    result = run_job(defs, "escrow_release_job", partition_key=TODAY.isoformat(),
                     raise_on_error=False)  # fmt: skip
    assert not result.success
    assert escrow_status(seeded)["ORD-1002"] == "held"
    (alert,) = audits(seeded, "escrow.ledger_mismatch")
    assert alert["entity_id"] == str(target) and "source" in alert["reason"]
    assert escrow_status(seeded)["ORD-1001"] == "released"


# --- Launchpad jobs -------------------------------------------------------------------------------


def test_release_escrow_now_defaults_to_a_dry_run_that_moves_nothing(seeded, defs, sandbox):
    before = ledger(sandbox)
    target = escrow_id(seeded, "ORD-1003")
    config = {"escrow_id": target, "actor": "ops@example.com", "reason": "preview"}
    assert run_job(defs, "release_escrow_now_job", config=config).success
    assert ledger(sandbox) == before and escrow_status(seeded)["ORD-1003"] == "held"
    (entry,) = audits(seeded, "escrow.release_now.dry_run")
    assert entry["actor"] == "ops@example.com"


def test_the_operators_reason_is_written_with_each_money_change_of_a_manual_auto_deduct(
    seeded, defs, sandbox
):
    config = {
        "business_date": TODAY.isoformat(),
        "actor": "ops@example.com",
        "reason": "missed the 23:00 run",
        "dry_run": False,
    }
    run_job(defs, "auto_deduct_now_job", config=config)
    entries = audits(seeded, "auto_deduct.repayment")
    assert len(entries) == len(EXPECTED_DEDUCTIONS)
    assert {(e["actor"], e["reason"].split(": ", 1)[0]) for e in entries} == {
        ("ops@example.com", "missed the 23:00 run")
    }
