"""Creator payouts end to end through Dagster against the sandbox: a payout date pays exactly
the eligible creators the right amounts, every ineligibility reason and the 7-day hold boundary
hold, ledger entries match transfers one to one, and running a date again pays nobody twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, Definitions

from lending_pipelines.assets.payouts.assets import PAYOUT_ASSETS
from lending_pipelines.assets.payouts.checks import PAYOUT_CHECKS
from lending_pipelines.assets.payouts.jobs import PAYOUT_JOBS
from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.resources.alerts import AlertsResource
from lending_pipelines.resources.database import DatabaseResource
from lending_pipelines.resources.payouts_config import PayoutsConfig
from lending_pipelines.resources.stripe_connect import StripeConnectResource
from lending_pipelines.settings import get_settings

PARTITION = "2026-01-15"
AS_OF = datetime(2026, 1, 15, 2, tzinfo=UTC)
DAY = timedelta(days=1)


# --- helpers shared by the payout e2e tests ----------------------------------------------------


@pytest.fixture
def payout_settings(monkeypatch):
    """Small chunks (so several workers have work) and a generous shared rate limit."""
    monkeypatch.setenv("LENDING_PAYOUT_CHUNK_SIZE", "3")
    monkeypatch.setenv("LENDING_STRIPE_REQUESTS_PER_SECOND", "500")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def payout_resources(db_url: str, sandbox, **stripe: object) -> dict:
    values = {
        "api_key": "sk_test_payouts_e2e_000001",
        "api_base": sandbox.url("stripe"),
        "max_network_retries": 4,
        "timeout_seconds": 5.0,
        "rate_limit_max_retries": 20,
        "rate_limit_backoff_seconds": 0.02,
        "rate_limit_backoff_cap_seconds": 0.2,
    }
    values.update(stripe)
    return {
        "database": DatabaseResource(url=db_url),
        "stripe_connect": StripeConnectResource(**values),
        "alerts": AlertsResource(),
        "payouts_config": PayoutsConfig.from_settings(get_settings()),
    }


def run_payouts(resources: dict, partition: str = PARTITION, *, selection=None, **kwargs):
    defs = Definitions(
        assets=PAYOUT_ASSETS, asset_checks=PAYOUT_CHECKS, jobs=PAYOUT_JOBS, resources=resources
    )
    job = defs.resolve_job_def("creator_payouts_job")
    if selection is not None:
        job = job.get_subset(asset_selection={AssetKey(key) for key in selection})
    return job.execute_in_process(
        partition_key=partition,
        instance=kwargs.pop("instance", DagsterInstance.ephemeral()),
        **kwargs,
    )


def add_creator(
    conn,
    ref: str,
    *,
    kyc: str = "verified",
    account: str | None = "default",
    earnings: list[tuple[int, datetime]] = (),
    debits: list[tuple[str, int, datetime]] = (),
    requests: list[tuple[int, datetime]] = (),
    hold_days: int = 7,
) -> int:
    account_id = f"acct_e2e_{ref}" if account == "default" else account
    creator_id = payouts_db.upsert_creators(
        conn,
        [
            {
                "external_ref": ref,
                "display_name": ref,
                "kyc_status": kyc,
                "stripe_account_id": account_id,
            }
        ],
    )[ref]
    payouts_db.add_ledger_entries(
        conn,
        [
            {"creator_id": creator_id, "entry_type": "earning", "tokens": t, "created_at": at}
            for t, at in earnings
        ]
        + [
            {"creator_id": creator_id, "entry_type": kind, "tokens": t, "created_at": at}
            for kind, t, at in debits
        ],
        hold_days=hold_days,
    )
    payouts_db.add_withdrawal_requests(
        conn, [{"creator_id": creator_id, "tokens": t, "requested_at": at} for t, at in requests]
    )
    return creator_id


def stripe_accounts(sandbox, *specs: dict) -> None:
    sandbox.configure("stripe", {"accounts": list(specs)})


def items_by_ref(engine) -> dict[str, sa.Row]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(payouts_db.payout_items, payouts_db.creators.c.external_ref).join(
                payouts_db.creators,
                payouts_db.creators.c.id == payouts_db.payout_items.c.creator_id,
            )
        )
        return {row.external_ref: row for row in rows}


def withdrawals(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(payouts_db.ledger_entries).where(
                    payouts_db.ledger_entries.c.entry_type == "withdrawal_completed"
                )
            )
        )


def assert_no_duplicate_transfers(sandbox) -> dict:
    state = sandbox.state("stripe")
    assert state["duplicate_transfer_groups"] == []
    assert set(state["transfers_per_destination"].values()) <= {1}
    return state


def materializations(result, key: str) -> dict:
    events = result.asset_materializations_for_node(key)
    assert events, f"{key} was not materialized"
    return {k: v.value for k, v in events[-1].metadata.items()}


# --- the world of one payout date ---------------------------------------------------------------


@pytest.fixture
def world(db, sandbox, payout_settings):
    """One creator per situation, as of the 2026-01-15 payout date."""
    stripe_accounts(
        sandbox,
        *[
            {"id": f"acct_e2e_{ref}"}
            for ref in (
                "ready",
                "chargeback",
                "boundary",
                "early",
                "small",
                "request",
                "capped",
                "kyc",
                "hold",
            )
        ],
        {
            "id": "acct_e2e_disabled",
            "payouts_enabled": False,
            "currently_due": ["tos"],
            "disabled_reason": "requirements.past_due",
        },
        {"id": "acct_e2e_restricted", "payouts_enabled": False, "transfers": "inactive"},
    )
    with db.begin() as conn:
        add_creator(conn, "ready", earnings=[(1_000, AS_OF - 30 * DAY)])
        add_creator(
            conn,
            "chargeback",
            earnings=[(900, AS_OF - 30 * DAY)],
            debits=[("chargeback", -300, AS_OF - 2 * DAY)],
        )
        # exactly 7 days old at the run: the hold has ended
        add_creator(conn, "boundary", earnings=[(400, AS_OF - 7 * DAY)])
        # one second short of 7 days: still held
        add_creator(conn, "early", earnings=[(400, AS_OF - 7 * DAY + timedelta(seconds=1))])
        add_creator(conn, "hold", earnings=[(150, AS_OF - 20 * DAY), (300, AS_OF - 3 * DAY)])
        add_creator(conn, "small", earnings=[(199, AS_OF - 30 * DAY)])
        add_creator(
            conn,
            "request",
            earnings=[(1_000, AS_OF - 30 * DAY)],
            requests=[(200, AS_OF - 5 * DAY), (100, AS_OF - 4 * DAY)],
        )
        add_creator(
            conn, "capped", earnings=[(800, AS_OF - 30 * DAY)], requests=[(2_000, AS_OF - 5 * DAY)]
        )
        add_creator(conn, "kyc", kyc="pending", earnings=[(5_000, AS_OF - 30 * DAY)])
        add_creator(conn, "noaccount", account=None, earnings=[(5_000, AS_OF - 30 * DAY)])
        add_creator(
            conn, "disabled", account="acct_e2e_disabled", earnings=[(5_000, AS_OF - 30 * DAY)]
        )
        add_creator(
            conn, "restricted", account="acct_e2e_restricted", earnings=[(5_000, AS_OF - 30 * DAY)]
        )
        # earned after the payout date's run: not part of this date
        add_creator(conn, "future", earnings=[(5_000, AS_OF + DAY)])
    return db


# tokens paid (0.05 USD per token → 5 cents per token)
EXPECTED_PAID = {
    "ready": 1_000,
    "chargeback": 600,
    "boundary": 400,
    "request": 300,
    "capped": 800,
}
EXPECTED_REASONS = {
    "early": "held_for_chargebacks",
    "hold": "held_for_chargebacks",
    "small": "below_minimum",
    "kyc": "kyc_not_verified",
    "noaccount": "no_connect_account",
    "disabled": "payouts_disabled",
    "restricted": "payouts_disabled",
}


def test_a_payout_date_pays_exactly_the_eligible_creators_the_right_amounts(world, db_url, sandbox):
    result = run_payouts(payout_resources(db_url, sandbox))
    assert result.success

    state = assert_no_duplicate_transfers(sandbox)
    paid_by_account = {t["destination"]: t["amount"] for t in state["transfers"]}
    assert paid_by_account == {
        f"acct_e2e_{ref}": tokens * 5 for ref, tokens in EXPECTED_PAID.items()
    }
    assert all(t["currency"] == "usd" for t in state["transfers"])

    items = items_by_ref(world)
    assert set(items) == set(EXPECTED_PAID)
    assert {ref: row.tokens for ref, row in items.items()} == EXPECTED_PAID
    assert {row.status for row in items.values()} == {"paid"}
    transfers_by_id = {t["id"]: t for t in state["transfers"]}
    for row in items.values():
        transfer = transfers_by_id[row.stripe_transfer_id]
        assert transfer["transfer_group"] == row.idempotency_key
        assert row.idempotency_key == f"payouts-{PARTITION}:{row.creator_id}"
        assert transfer["metadata"]["payout_item"] == row.idempotency_key

    entries = withdrawals(world)
    assert sorted(e.reference for e in entries) == sorted(transfers_by_id)  # one to one
    assert {e.payout_item_id: -e.tokens for e in entries} == {
        row.id: row.tokens for row in items.values()
    }

    with world.connect() as conn:
        reasons = {
            row.creator_id: row.reason for row in payouts_db.eligibility_rows(conn, PARTITION_DATE)
        }
        refs = dict(
            conn.execute(
                sa.select(payouts_db.creators.c.id, payouts_db.creators.c.external_ref)
            ).all()
        )
        batch = payouts_db.get_batch(conn, PARTITION_DATE)
        requests = dict(
            conn.execute(
                sa.select(
                    payouts_db.withdrawal_requests.c.tokens, payouts_db.withdrawal_requests.c.status
                )
            ).all()
        )
    assert {refs[c]: r for c, r in reasons.items() if r} == EXPECTED_REASONS
    assert "future" not in {refs[c] for c in reasons}
    assert batch.status == "completed" and batch.paid_count == len(EXPECTED_PAID)
    assert batch.total_amount_minor == sum(EXPECTED_PAID.values()) * 5
    assert requests == {200: "completed", 100: "completed", 2_000: "completed"}

    eligibility = materializations(result, "eligible_creators")
    assert eligibility["eligible_creators"] == len(EXPECTED_PAID)
    assert eligibility["accounts_checked"] == 7  # candidates: the 5 paid + disabled + restricted
    transfers = materializations(result, "payout_transfers")
    assert transfers["paid"] == len(EXPECTED_PAID) and transfers["failed"] == 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "batch_total_matches_items": True,
        "no_creator_twice": True,
        "ledger_matches_transfers": True,
        "every_item_paid": True,
    }


PARTITION_DATE = AS_OF.date()


def test_the_account_state_is_refreshed_from_stripe_before_deciding(world, db_url, sandbox):
    with world.begin() as conn:  # the stored state claims every account is fine
        conn.execute(
            sa.update(payouts_db.creators).values(
                payouts_enabled=True, transfers_capability="active"
            )
        )
    run_payouts(payout_resources(db_url, sandbox))
    with world.connect() as conn:
        stored = dict(
            conn.execute(
                sa.select(
                    payouts_db.creators.c.external_ref, payouts_db.creators.c.payouts_enabled
                ).where(payouts_db.creators.c.external_ref.in_(["disabled", "restricted", "ready"]))
            ).all()
        )
    assert stored == {"disabled": False, "restricted": False, "ready": True}
    assert "acct_e2e_disabled" not in sandbox.state("stripe")["transfers_per_destination"]


def test_materializing_the_same_partition_twice_creates_nothing_new(world, db_url, sandbox):
    resources = payout_resources(db_url, sandbox)
    run_payouts(resources)
    first = sandbox.state("stripe")["transfer_count"]
    with world.begin() as conn:  # a new earning after the batch was made
        add_creator(conn, "late", earnings=[(3_000, AS_OF - 30 * DAY)])
    stripe_accounts(sandbox, {"id": "acct_e2e_late"})
    again = run_payouts(resources)
    assert again.success
    assert sandbox.state("stripe")["transfer_count"] == first
    assert materializations(again, "payout_batch")["created_now"] is False
    assert materializations(again, "payout_transfers")["transfers_made_this_run"] == 0
    assert materializations(again, "eligible_creators")["frozen"] is True
    with world.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(payouts_db.payout_batches)).scalar()
            == 1
        )
        assert conn.execute(
            sa.select(sa.func.count()).select_from(payouts_db.payout_items)
        ).scalar() == len(EXPECTED_PAID)
    assert len(withdrawals(world)) == len(EXPECTED_PAID)


def test_the_next_payout_date_pays_only_what_is_new_and_a_backfill_pays_nothing_twice(
    world, db_url, sandbox
):
    resources = payout_resources(db_url, sandbox)
    run_payouts(resources)
    with world.begin() as conn:
        ready = conn.execute(
            sa.select(payouts_db.creators.c.id).where(payouts_db.creators.c.external_ref == "ready")
        ).scalar_one()
        payouts_db.add_ledger_entries(
            conn,
            [
                {
                    "creator_id": ready,
                    "entry_type": "earning",
                    "tokens": 250,
                    "created_at": AS_OF + DAY,
                }
            ],
            hold_days=7,
        )
    assert run_payouts(resources, "2026-02-01").success
    with world.connect() as conn:
        february = payouts_db.get_batch(conn, datetime(2026, 2, 1).date())
    # ready: its 250 new tokens; early/hold: their held earnings matured; request: the rest of
    # its balance once no request is pending; small is still below the minimum
    by_account = {}
    for t in sandbox.state("stripe")["transfers"]:
        by_account.setdefault(t["destination"], []).append(t["amount"])
    assert by_account["acct_e2e_ready"] == [5_000, 1_250]
    assert by_account["acct_e2e_early"] == [2_000]
    assert by_account["acct_e2e_hold"] == [2_250]
    assert by_account["acct_e2e_request"] == [1_500, 3_500]
    assert "acct_e2e_small" not in by_account
    assert february.item_count == 4
    # a backfill of an earlier, missed date: everything it could pay has been paid since
    assert run_payouts(resources, "2026-01-01").success
    with world.connect() as conn:
        january = payouts_db.get_batch(conn, datetime(2026, 1, 1).date())
    assert january.item_count == 0 and january.status == "completed"
    assert sandbox.state("stripe")["transfer_count"] == len(EXPECTED_PAID) + 4


def test_a_failed_blocking_check_stops_the_transfers(world, db_url, sandbox):
    resources = payout_resources(db_url, sandbox)
    run_payouts(resources, selection=["eligible_creators", "payout_batch"])
    with world.begin() as conn:  # corrupt the stored total
        conn.execute(sa.update(payouts_db.payout_batches).values(total_amount_minor=1))
        conn.execute(sa.update(payouts_db.payout_batches).values(item_count=99))
    # re-running the batch recomputes nothing (it exists), so the check sees the corruption
    result = run_payouts(resources, raise_on_error=False)
    assert not result.success
    assert sandbox.state("stripe")["transfer_count"] == 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["batch_total_matches_items"] is False
