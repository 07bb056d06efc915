"""Analytics end to end: operational rows in the session's test database, the dbt assets
materialized through Dagster against that database (as a password-holding, non-superuser role),
and the models' rows checked against the rows they summarise."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lending_pipelines.analytics_dbt import CONNECTION_ENV, DBT_PROJECT_DIR, dbt_resource
from lending_pipelines.assets.analytics.assets import analytics_dbt_models
from lending_pipelines.assets.analytics.checks import no_phone_numbers_in_analytics
from lending_pipelines.assets.analytics.jobs import analytics_daily_refresh, analytics_refresh_job
from lending_pipelines.db import escrow as escrow_db
from lending_pipelines.db import loans as loans_db
from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.db.engine import dispose_engines
from lending_pipelines.db.flags import set_flag
from lending_pipelines.resources.database import DatabaseResource

MODELS = {
    "payout_batch_summary",
    "creator_payout_history",
    "escrow_release_daily",
    "auto_deduct_daily",
    "loan_polling_health_hourly",
    "disbursement_outcomes_daily",
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def analytics_role(engine: sa.Engine, db_url: str) -> Iterator[tuple[str, str]]:
    """A login role with a password that may only read `lending` and owns `analytics`."""
    name = f"analytics_{uuid.uuid4().hex[:10]}"
    password = f"S3cret-{uuid.uuid4().hex}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
        conn.execute(sa.text(f"GRANT USAGE ON SCHEMA lending TO {name}"))
        conn.execute(sa.text(f"GRANT SELECT ON ALL TABLES IN SCHEMA lending TO {name}"))
        conn.execute(sa.text("DROP SCHEMA IF EXISTS analytics CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA analytics AUTHORIZATION {name}"))
    url = make_url(db_url).set(username=name, password=password)
    yield url.render_as_string(hide_password=False), password
    dispose_engines()
    with engine.begin() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :n"),
            {"n": name},
        )
        conn.execute(sa.text("DROP SCHEMA IF EXISTS analytics CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA analytics"))
        conn.execute(sa.text(f"DROP OWNED BY {name}"))
        conn.execute(sa.text(f"DROP ROLE {name}"))


def seed_payouts(conn: sa.Connection) -> None:
    ada, ben = conn.execute(
        sa.insert(payouts_db.creators).returning(payouts_db.creators.c.id),
        [
            {"external_ref": "cr-ada", "display_name": "Ada", "kyc_status": "verified"},
            {"external_ref": "cr-ben", "display_name": "Ben", "kyc_status": "verified"},
        ],
    ).scalars()
    first, second = conn.execute(
        sa.insert(payouts_db.payout_batches).returning(payouts_db.payout_batches.c.id),
        [
            {
                "payout_date": date(2025, 3, 1),
                "batch_hash": "h-0301",
                "currency": "USD",
                "token_rate": Decimal("0.05"),
            },
            {
                "payout_date": date(2025, 3, 15),
                "batch_hash": "h-0315",
                "currency": "USD",
                "token_rate": Decimal("0.05"),
            },
        ],
    ).scalars()

    def item(batch, creator, day, amount, status, **extra):
        return {
            "batch_id": batch, "creator_id": creator, "idempotency_key": f"payouts-{day}:{creator}",
            "chunk_no": 0, "tokens": amount * 20, "amount_minor": amount, "currency": "USD",
            "destination_account": f"acct_{creator}", "status": status,
            "stripe_transfer_id": None, "paid_at": None, "error_kind": None, "retryable": None,
            **extra,
        }  # fmt: skip

    conn.execute(
        sa.insert(payouts_db.payout_items),
        [
            item(first, ada, "2025-03-01", 1500, "paid",
                 stripe_transfer_id="tr_1", paid_at=at("2025-03-01T02:05:00")),
            item(first, ben, "2025-03-01", 2500, "failed",
                 error_kind="invalid_account", retryable=False),
            item(second, ada, "2025-03-15", 2000, "paid",
                 stripe_transfer_id="tr_2", paid_at=at("2025-03-15T02:04:00")),
            item(second, ben, "2025-03-15", 1000, "pending"),
        ],
    )  # fmt: skip
    for batch in (first, second):
        payouts_db.refresh_batch_totals(conn, batch)


def seed_escrow(conn: sa.Connection) -> None:
    def escrow(order, retailer, wholesaler, amount, created, due, released):
        return {
            "order_id": order, "retailer_id": retailer, "wholesaler_id": wholesaler,
            "amount": amount, "currency": "RWF", "status": "released",
            "created_at": at(created), "auto_release_at": at(due), "released_at": at(released),
            "ledger_reference": f"escrow-release:{order}", "ledger_transaction_id": f"txn-{order}",
        }  # fmt: skip

    ids = conn.execute(
        sa.insert(escrow_db.escrows).returning(escrow_db.escrows.c.id),
        [
            escrow("o-1", "r-1", "w-1", 100_000, "2025-03-01T00:00", "2025-03-08T00:00",
                   "2025-03-08T23:00"),
            escrow("o-2", "r-2", "w-1", 50_000, "2025-03-01T00:00", "2025-03-08T00:00",
                   "2025-03-08T10:00"),
            escrow("o-3", "r-1", "w-2", 70_000, "2025-03-02T00:00", "2025-03-09T00:00",
                   "2025-03-10T23:00"),
        ],
    ).scalars().all()  # fmt: skip
    rows = [
        (ids[0], date(2025, 3, 8), 100_000, "schedule:escrow_auto_release_daily", False,
         "2025-03-08T23:00"),
        (ids[1], date(2025, 3, 8), 50_000, "ops@example.com", False, "2025-03-08T10:00"),
        (ids[2], date(2025, 3, 9), 70_000, "schedule:escrow_auto_release_daily", True,
         "2025-03-10T23:00"),
    ]  # fmt: skip
    conn.execute(
        sa.insert(escrow_db.escrow_releases),
        [
            {"escrow_id": escrow_id, "business_date": day, "amount": amount, "currency": "RWF",
             "source_balance_id": "bln_escrow", "destination_balance_id": "bln_wholesaler",
             "ledger_reference": f"escrow-release:{escrow_id}",
             "ledger_transaction_id": f"txn-release-{escrow_id}", "recovered": recovered,
             "released_by": actor, "released_at": at(released)}
            for escrow_id, day, amount, actor, recovered, released in rows
        ],
    )  # fmt: skip
    conn.execute(
        sa.insert(escrow_db.repayments),
        [
            {"retailer_id": retailer, "business_date": date(2025, 3, 8), "currency": "RWF",
             "amount": amount, "debt_before": debt, "wallet_balance_before": wallet,
             "limited_by": limited_by, "source_balance_id": f"bln_wallet_{retailer}",
             "destination_balance_id": "bln_repayment",
             "ledger_reference": f"auto-deduct:{retailer}:2025-03-08",
             "ledger_transaction_id": txn, "status": status}
            for retailer, amount, debt, wallet, limited_by, txn, status in [
                ("r-1", 30_000, 100_000, 200_000, "percentage", "txn-d1", "applied"),
                ("r-2", 5_000, 50_000, 15_000, "minimum_balance", "txn-d2", "applied"),
                ("r-3", 12_000, 40_000, 100_000, "percentage", None, "failed"),
            ]
        ],
    )  # fmt: skip


def seed_loans(conn: sa.Connection) -> None:
    conn.execute(
        sa.insert(loans_db.partners),
        [{"id": "acme", "name": "Acme Microfinance"}, {"id": "bolt", "name": "Bolt Credit"}],
    )
    polls = [
        ("acme", "2025-03-03T07:00:00", 2, True, None),
        ("acme", "2025-03-03T07:10:00", 4, True, None),
        ("acme", "2025-03-03T07:20:00", 3, True, None),
        ("acme", "2025-03-03T07:30:00", 31, False, "timeout after 30 s"),
        ("acme", "2025-03-03T08:05:00", 1, True, None),
        ("bolt", "2025-03-03T07:05:00", 1, False, "HTTP 401 bad credentials"),
        ("bolt", "2025-03-03T07:15:00", 1, False, "HTTP 503 from Fineract"),
    ]
    conn.execute(
        sa.insert(loans_db.poll_attempts),
        [
            {"partner_id": partner, "started_at": at(start),
             "finished_at": at(start) + timedelta(seconds=seconds), "ok": ok,
             "loans_seen": 3 if ok else 0, "new_loans": 1 if ok else 0, "error": error}
            for partner, start, seconds, ok, error in polls
        ],
    )  # fmt: skip
    tracked = conn.execute(
        sa.insert(loans_db.loan_tracking).returning(loans_db.loan_tracking.c.id),
        [
            {"partner_id": "acme", "fineract_loan_id": loan, "status_id": 200,
             "principal": Decimal("5000.00"), "currency": "KES",
             "first_seen_at": at("2025-03-03T07:00:00")}
            for loan in (101, 102, 103)
        ],
    ).scalars().all()  # fmt: skip
    resolved = at("2025-03-03T07:02:00")
    conn.execute(
        sa.insert(loans_db.disbursement_requests),
        [
            {"partner_id": "acme", "fineract_loan_id": 101, "loan_tracking_id": tracked[0],
             "status": "succeeded", "amount_minor": 500_000, "currency": "KES",
             "charge_minor": 3_000, "mpesa_transaction_id": "QK1", "attempts": 1,
             "submitted_at": resolved - timedelta(seconds=30), "resolved_at": resolved,
             "fineract_recorded_at": resolved, "failure_reason": None, "retryable": False,
             "created_at": at("2025-03-03T07:01:00")},
            {"partner_id": "acme", "fineract_loan_id": 102, "loan_tracking_id": tracked[1],
             "status": "succeeded", "amount_minor": 250_000, "currency": "KES",
             "charge_minor": 0, "mpesa_transaction_id": "QK2", "attempts": 2,
             "submitted_at": resolved - timedelta(seconds=60), "resolved_at": resolved,
             "fineract_recorded_at": None, "failure_reason": None, "retryable": False,
             "created_at": at("2025-03-03T07:01:00")},
            {"partner_id": "acme", "fineract_loan_id": 103, "loan_tracking_id": tracked[2],
             "status": "failed", "amount_minor": 100_000, "currency": "KES",
             "charge_minor": 0, "mpesa_transaction_id": None, "attempts": 1,
             "submitted_at": None, "resolved_at": resolved, "fineract_recorded_at": None,
             "failure_reason": "invalid phone '0700'", "retryable": False,
             "created_at": at("2025-03-03T07:01:00")},
        ],
    )  # fmt: skip


@pytest.fixture
def seeded(db: sa.Engine) -> sa.Engine:
    with db.begin() as conn:
        seed_payouts(conn)
        seed_escrow(conn)
        seed_loans(conn)
    return db


def materialize(
    role_url: str, selection=None, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [analytics_dbt_models],
        selection=selection,
        resources={"dbt": dbt_resource(), "database": DatabaseResource(url=role_url)},
        instance=instance or dg.DagsterInstance.ephemeral(),
    )


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.path[-1] for event in result.get_asset_materialization_events()}


def rows(engine: sa.Engine, sql: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]


@pytest.mark.slow(seconds=30)
def test_dbt_assets_build_every_model_from_the_operational_tables(seeded, analytics_role, settings):
    role_url, password = analytics_role

    instance = dg.DagsterInstance.ephemeral()

    result = materialize(role_url, instance=instance)

    assert result.success
    built = materialized(result)
    assert MODELS <= built
    checks = result.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)
    summary_event = next(
        event
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["analytics", "payout_batch_summary"])
    )
    assert summary_event.materialization.metadata["dagster/row_count"].value == 2

    # the models were built by the URL's user, and its password is nowhere in what was logged
    owner = rows(seeded, "SELECT tableowner FROM pg_tables WHERE tablename = 'auto_deduct_daily'")
    assert owner == [{"tableowner": make_url(role_url).username}]
    logged = "\n".join(repr(entry) for entry in instance.all_logs(result.run_id))
    assert "Finished dbt command" in logged and password not in logged
    dbt_logs = list(Path(DBT_PROJECT_DIR, "target").glob(f"*-{result.run_id[:7]}-*/dbt.log"))
    assert len(dbt_logs) == 1
    assert "Acquiring new postgres connection" in dbt_logs[0].read_text()
    assert password not in dbt_logs[0].read_text()
    assert not any(name in os.environ for name in CONNECTION_ENV)

    # payouts: a batch's totals equal its items; history runs a paid total per creator
    batches = rows(
        seeded,
        "SELECT payout_date, status, items, paid_items, failed_items, open_items, amount_minor,"
        " paid_amount_minor, failed_amount_minor, open_amount_minor, paid_rate,"
        " stored_totals_match FROM analytics.payout_batch_summary ORDER BY payout_date",
    )
    assert batches == [
        {"payout_date": date(2025, 3, 1), "status": "completed_with_failures", "items": 2,
         "paid_items": 1, "failed_items": 1, "open_items": 0, "amount_minor": 4000,
         "paid_amount_minor": 1500, "failed_amount_minor": 2500, "open_amount_minor": 0,
         "paid_rate": Decimal("0.5000"), "stored_totals_match": True},
        {"payout_date": date(2025, 3, 15), "status": "processing", "items": 2,
         "paid_items": 1, "failed_items": 0, "open_items": 1, "amount_minor": 3000,
         "paid_amount_minor": 2000, "failed_amount_minor": 0, "open_amount_minor": 1000,
         "paid_rate": Decimal("0.5000"), "stored_totals_match": True},
    ]  # fmt: skip
    items = rows(seeded, "SELECT sum(amount_minor) AS total FROM lending.payout_items")
    assert items[0]["total"] == sum(batch["amount_minor"] for batch in batches)
    history = rows(
        seeded,
        "SELECT creator_name, payout_date, payout_number, status, amount_minor,"
        " cumulative_paid_amount_minor FROM analytics.creator_payout_history"
        " ORDER BY creator_name, payout_date",
    )
    assert [
        (h["creator_name"], h["payout_number"], h["status"], h["cumulative_paid_amount_minor"])
        for h in history
    ] == [
        ("Ada", 1, "paid", 1500),
        ("Ada", 2, "paid", 3500),
        ("Ben", 1, "failed", 0),
        ("Ben", 2, "pending", 0),
    ]

    # escrow: releases per business day; auto-deduct per day with the bound that decided each
    releases = rows(
        seeded,
        "SELECT business_date, currency, releases, released_amount_minor, wholesalers_paid,"
        " retailers, scheduled_releases, manual_releases, recovered_releases,"
        " released_over_a_day_late FROM analytics.escrow_release_daily ORDER BY business_date",
    )
    assert releases == [
        {"business_date": date(2025, 3, 8), "currency": "RWF", "releases": 2,
         "released_amount_minor": 150_000, "wholesalers_paid": 1, "retailers": 2,
         "scheduled_releases": 1, "manual_releases": 1, "recovered_releases": 0,
         "released_over_a_day_late": 0},
        {"business_date": date(2025, 3, 9), "currency": "RWF", "releases": 1,
         "released_amount_minor": 70_000, "wholesalers_paid": 1, "retailers": 1,
         "scheduled_releases": 1, "manual_releases": 0, "recovered_releases": 1,
         "released_over_a_day_late": 1},
    ]  # fmt: skip
    deductions = rows(
        seeded,
        "SELECT business_date, retailers, applied_deductions, failed_deductions,"
        " deducted_amount_minor, failed_amount_minor, debt_before_minor, share_of_debt_recovered,"
        " limited_by_percentage, limited_by_minimum_balance FROM analytics.auto_deduct_daily",
    )
    assert deductions == [
        {"business_date": date(2025, 3, 8), "retailers": 3, "applied_deductions": 2,
         "failed_deductions": 1, "deducted_amount_minor": 35_000, "failed_amount_minor": 12_000,
         "debt_before_minor": 190_000, "share_of_debt_recovered": Decimal("0.1842"),
         "limited_by_percentage": 2, "limited_by_minimum_balance": 1},
    ]  # fmt: skip

    # loans: polling health per partner-hour and the disbursement funnel per day, local time
    zone = ZoneInfo(settings.loans_timezone)
    hour = at("2025-03-03T07:00:00").astimezone(zone).replace(tzinfo=None)
    polling = rows(
        seeded,
        "SELECT partner_id, partner_name, hour_start_local, poll_attempts, succeeded_polls,"
        " failed_polls, success_rate, meets_success_target, failed_every_poll,"
        " max_cycle_seconds, within_cycle_target, new_loans, last_error"
        " FROM analytics.loan_polling_health_hourly ORDER BY partner_id, hour_start_local",
    )
    assert polling[0] == {
        "partner_id": "acme", "partner_name": "Acme Microfinance", "hour_start_local": hour,
        "poll_attempts": 4, "succeeded_polls": 3, "failed_polls": 1,
        "success_rate": Decimal("0.7500"), "meets_success_target": False,
        "failed_every_poll": False, "max_cycle_seconds": Decimal("31.000"),
        "within_cycle_target": False, "new_loans": 3, "last_error": "timeout after 30 s",
    }  # fmt: skip
    assert (polling[1]["poll_attempts"], polling[1]["success_rate"]) == (1, Decimal("1.0000"))
    assert polling[1]["meets_success_target"] is True
    bolt = polling[2]
    assert (bolt["partner_id"], bolt["failed_every_poll"], bolt["success_rate"]) == (
        "bolt",
        True,
        Decimal("0.0000"),
    )
    assert bolt["last_error"] == "HTTP 503 from Fineract"
    outcomes = rows(
        seeded,
        "SELECT business_date, partner_id, currency, new_loans_tracked, requests, succeeded,"
        " failed, requested_amount_minor, disbursed_amount_minor, failed_amount_minor,"
        " charges_minor, success_rate, meets_success_target, awaiting_fineract_record,"
        " avg_seconds_to_result, top_failure_reason FROM analytics.disbursement_outcomes_daily",
    )
    assert outcomes == [
        {"business_date": at("2025-03-03T07:01:00").astimezone(zone).date(),
         "partner_id": "acme", "currency": "KES", "new_loans_tracked": 3, "requests": 3,
         "succeeded": 2, "failed": 1, "requested_amount_minor": 850_000,
         "disbursed_amount_minor": 750_000, "failed_amount_minor": 100_000,
         "charges_minor": 3_000, "success_rate": Decimal("0.6667"),
         "meets_success_target": False, "awaiting_fineract_record": 1,
         "avg_seconds_to_result": Decimal("45.0"), "top_failure_reason": "invalid phone '0700'"},
    ]  # fmt: skip


@pytest.mark.slow(seconds=30)
def test_drifted_batch_totals_show_as_a_warning_check_not_a_failed_run(seeded, analytics_role):
    role_url, _ = analytics_role
    with seeded.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE lending.payout_batches SET total_amount_minor = total_amount_minor + 1"
                " WHERE payout_date = '2025-03-01'"
            )
        )
    summary = dg.AssetKey(["analytics", "payout_batch_summary"])

    result = materialize(role_url, selection=dg.AssetSelection.assets(summary).upstream(depth=1))

    assert result.success
    assert materialized(result) == {
        "payout_batch_summary",
        "stg_lending__payout_batches",
        "stg_lending__payout_items",
    }
    drift = [
        check
        for check in result.get_asset_check_evaluations()
        if check.asset_key == summary and "stored_totals_match" in check.check_name
    ]
    assert [(check.passed, check.severity) for check in drift] == [
        (False, dg.AssetCheckSeverity.WARN)
    ]
    flags = rows(
        seeded,
        "SELECT payout_date, stored_totals_match FROM analytics.payout_batch_summary"
        " ORDER BY payout_date",
    )
    assert [f["stored_totals_match"] for f in flags] == [False, True]


def test_daily_refresh_runs_once_a_day_and_skips_while_cron_is_off(db, database):
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2025, 3, 3, 5, 0, tzinfo=UTC),
        resources={"database": database},
    )

    request = analytics_daily_refresh(context)
    with db.begin() as conn:
        set_flag(conn, "CRON_ENABLED", False, updated_by="ops@example.com", reason="freeze")
    skipped = analytics_daily_refresh(context)

    assert request.run_key == "analytics_refresh_job:2025-03-03"
    assert analytics_daily_refresh.job_name == analytics_refresh_job.name
    assert isinstance(skipped, dg.SkipReason)
    assert "CRON_ENABLED" in skipped.skip_message


@pytest.mark.slow(seconds=30)
def test_a_phone_number_reaching_analytics_fails_the_privacy_check_without_showing_it(
    seeded, analytics_role
):
    role_url, _ = analytics_role
    staging = dg.AssetKey(["analytics", "stg_lending__disbursement_requests"])
    assert materialize(role_url, selection=dg.AssetSelection.assets(staging)).success
    database = DatabaseResource(url=role_url)
    assert no_phone_numbers_in_analytics(database=database).passed

    with seeded.begin() as conn:  # a legacy row whose reason quotes the number in full
        conn.execute(
            sa.text(
                "UPDATE lending.disbursement_requests SET failure_reason = "
                "'receiver 254712345678 is not registered' WHERE status = 'failed'"
            )
        )
    result = no_phone_numbers_in_analytics(database=database)
    assert not result.passed
    assert "stg_lending__disbursement_requests.failure_reason" in result.description
    shown = result.description + repr(result.metadata)
    assert "254712345678" not in shown


def test_the_daily_analytics_refresh_runs_the_privacy_check():
    from lending_pipelines.definitions import defs

    job = defs.resolve_job_def("analytics_refresh_job")
    assert (
        dg.AssetCheckKey(
            dg.AssetKey(["analytics", "disbursement_outcomes_daily"]),
            "no_phone_numbers_in_analytics",
        )
        in job.asset_layer.asset_graph.asset_check_keys
    )


@pytest.mark.slow(seconds=15)
def test_a_second_dbt_run_on_the_same_database_reuses_the_first_ones_parse(seeded, analytics_role):
    role_url, password = analytics_role
    staging = dg.AssetSelection.assets(dg.AssetKey(["analytics", "stg_lending__partners"]))
    kept = Path(DBT_PROJECT_DIR, "target", "partial_parse")

    first = materialize(role_url, selection=staging)
    second = materialize(role_url, selection=staging)

    assert first.success and second.success
    logs = {
        run.run_id: next(Path(DBT_PROJECT_DIR, "target").glob(f"*-{run.run_id[:7]}-*/dbt.log"))
        for run in (first, second)
    }
    second_log = logs[second.run_id].read_text()
    assert "Unable to do partial parsing" not in second_log
    assert "Partial parsing enabled" in second_log
    assert all(password.encode() not in path.read_bytes() for path in kept.glob("*.msgpack"))
