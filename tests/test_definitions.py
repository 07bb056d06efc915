"""Everything automated, in one place: a change to a schedule, job or asset group shows here."""

import subprocess
import sys
from pathlib import Path

import pytest
from dagster import Definitions

from lending_pipelines.definitions import defs
from lending_pipelines.settings import PROJECT_ROOT

# analytics (dbt): every model in dbt/models, keyed analytics/<model>
ANALYTICS_MODELS: set[str] = {
    f"analytics/{model}"
    for model in (
        "stg_lending__partners",
        "stg_lending__poll_attempts",
        "stg_lending__loan_tracking",
        "stg_lending__disbursement_requests",
        "stg_lending__creators",
        "stg_lending__payout_batches",
        "stg_lending__payout_items",
        "stg_lending__escrows",
        "stg_lending__escrow_releases",
        "stg_lending__repayments",
        "stg_lending__retailers",
        "stg_lending__credit_accounts",
        "stg_lending__orders",
        "stg_lending__credit_transactions",
        "stg_lending__retailer_insights",
        "credit_outstanding_by_retailer",
        "credit_outstanding_by_bucket",
        "credit_at_risk_retailers",
        "payout_batch_summary",
        "creator_payout_history",
        "escrow_release_daily",
        "auto_deduct_daily",
        "loan_polling_health_hourly",
        "disbursement_outcomes_daily",
        "stg_lending__collection_loans",
        "stg_lending__installments",
        "stg_lending__dpd_daily_summary",
        "stg_lending__dpd_bucket_changes",
        "stg_lending__dpd_days",
        "stg_lending__collector_scores",
        "collections_buckets_daily",
        "collections_dpd_daily",
        "collections_by_collector",
        "collections_roll_rates",
    )
}

# schedule name → (cron, execution timezone)
EXPECTED_SCHEDULES: dict[str, tuple[str, str]] = {
    # retailer credit (workflow 2)
    "credit_guardrails_daily": ("0 4 * * *", "Asia/Kolkata"),
    "credit_auto_pause_daily": ("0 11 * * *", "Asia/Kolkata"),
    "payment_reminders_daily": ("0 10 * * *", "Asia/Kolkata"),
    "pending_order_expiry_every_6_hours": ("0 */6 * * *", "Asia/Kolkata"),
    "order_follow_ups_daily": ("0 14 * * *", "Asia/Kolkata"),
    "retailer_insights_daily": ("0 3 * * *", "Asia/Kolkata"),
    # escrow (workflow 4)
    "escrow_auto_release_daily": ("0 2 * * *", "Africa/Nairobi"),
    "auto_deduct_daily": ("0 23 * * *", "Africa/Nairobi"),
    # creator payouts (workflow 3)
    "creator_payouts_schedule": ("0 2 1,15 * *", "UTC"),
    "payout_retry_schedule": ("0 6 * * *", "UTC"),
    # loan polling and M-Pesa auto-disbursement (workflow 1)
    "loan_polling_every_10_minutes": ("*/10 * * * *", "Africa/Nairobi"),
    "disbursement_retry_every_5_minutes": ("*/5 * * * *", "Africa/Nairobi"),
    # loan collections (workflow 5)
    "collections_dpd_daily": ("30 0 * * *", "Asia/Kolkata"),
    "collection_reminders_hourly": ("5 * * * *", "Asia/Kolkata"),
    # analytics (dbt)
    "analytics_daily_refresh": ("0 5 * * *", "UTC"),
}

# job name → asset keys or op names it runs
EXPECTED_JOBS: dict[str, set[str]] = {
    # retailer credit (workflow 2)
    "credit_guardrails_job": {"credit_risk_dashboard", "credit_guardrails"},
    "credit_auto_pause_job": {"credit_auto_pause"},
    "payment_reminders_job": {"payment_reminders"},
    "pending_order_expiry_job": {"pending_orders"},
    "order_follow_ups_job": {"order_follow_ups"},
    "failed_order_reversal_job": {"reverse_failed_orders"},
    "retailer_insights_job": {"retailer_insights"},
    "pause_credit_job": {"pause_credit"},
    "unpause_credit_job": {"unpause_credit"},
    "record_credit_payment_job": {"record_credit_payment"},
    "credit_adjustment_job": {"adjust_credit"},
    "change_credit_guardrails_job": {"change_credit_guardrails"},
    # escrow (workflow 4)
    "escrow_release_job": {"escrow_releases"},
    "auto_deduct_job": {"auto_deductions"},
    "release_escrow_now_job": {"release_escrow_now"},
    "escrow_auto_release_now_job": {"run_escrow_auto_release"},
    "auto_deduct_now_job": {"run_auto_deduct_now"},
    "dispute_escrow_job": {"dispute_escrow"},
    # creator payouts (workflow 3)
    "creator_payouts_job": {"eligible_creators", "payout_batch", "payout_transfers"},
    "payout_retry_job": {"retry_failed_payout_items"},
    "stripe_events_job": {"apply_stripe_events"},
    # loan polling and M-Pesa auto-disbursement (workflow 1)
    "loan_polling_job": {"loan_tracking", "loan_disbursements"},
    "disbursement_retry_job": {"retry_disbursements"},
    "mpesa_results_job": {"apply_mpesa_results"},
    # loan collections (workflow 5)
    "collections_daily_job": {"loan_dpd", "legal_escalations", "collector_scores"},
    "payment_file_job": {"post_payment_file"},
    "reassign_collector_job": {"reassign_collector"},
    "manual_payment_job": {"record_manual_payment"},
    "release_from_quarantine_job": {"release_from_quarantine"},
    "close_loan_job": {"close_loan"},
    "collection_reminders_job": {"send_borrower_reminders"},
    # analytics (dbt)
    "analytics_refresh_job": ANALYTICS_MODELS,
}

# asset key → group
EXPECTED_ASSET_GROUPS: dict[str, str] = {
    # retailer credit (workflow 2)
    "credit_risk_dashboard": "credit",
    "credit_guardrails": "credit",
    "credit_auto_pause": "credit",
    "payment_reminders": "credit",
    "pending_orders": "credit",
    "order_follow_ups": "credit",
    "retailer_insights": "credit",
    # escrow (workflow 4)
    "escrow_releases": "escrow",
    "auto_deductions": "escrow",
    # creator payouts (workflow 3)
    "eligible_creators": "payouts",
    "payout_batch": "payouts",
    "payout_transfers": "payouts",
    # loan polling and M-Pesa auto-disbursement (workflow 1)
    "loan_tracking": "loans",
    "loan_disbursements": "loans",
    # loan collections (workflow 5)
    "loan_dpd": "collections",
    "legal_escalations": "collections",
    "collector_scores": "collections",
    # analytics (dbt)
    **{key: "analytics" for key in ANALYTICS_MODELS},
}

EXPECTED_SENSORS: set[str] = {
    "escrow_run_failure_alert",
    "credit_run_failure_alert",
    "failed_credit_orders_sensor",
    "payouts_run_failure_alert",
    "analytics_run_failure_alert",
    "mpesa_results_sensor",
    "stripe_events_sensor",
    "loans_run_failure_alert",
    "collections_run_failure_alert",
    "payment_files_sensor",
    "collections_guard_sensor",
    # WhatsApp outbox: Twilio status callbacks
    "whatsapp_delivery_status_sensor",
}

EXPECTED_RESOURCES = {
    "database",
    "blnk",
    "alerts",
    "stripe_connect",
    "whatsapp",
    "fineract",
    "mpesa",
    "dbt",
    "credit_config",
    "collections_config",
}


def _repo(d: Definitions):
    return d.get_repository_def()


@pytest.mark.slow(seconds=10)
def test_dg_check_defs_accepts_the_code_location_as_the_tooling_loads_it():
    # `dg check defs` reads the project's [tool.dg] and loads the code location in its own
    # process: run here, it overlaps the rest of the suite instead of preceding it.
    dg = Path(sys.executable).parent / "dg"
    result = subprocess.run(
        [str(dg), "check", "defs"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_definitions_load_and_resolve():
    Definitions.validate_loadable(defs)


def test_every_schedule_has_its_cron_and_timezone():
    schedules = {s.name: (s.cron_schedule, s.execution_timezone) for s in _repo(defs).schedule_defs}
    assert schedules == EXPECTED_SCHEDULES


def test_every_job_selects_what_it_should():
    repo = _repo(defs)
    jobs = {}
    for job in repo.get_all_jobs():
        if job.name.startswith("__ASSET_JOB"):
            continue
        asset_keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
        jobs[job.name] = asset_keys or set(job.graph.node_names())
    assert jobs == EXPECTED_JOBS


def test_every_asset_is_in_its_group():
    graph = _repo(defs).asset_graph
    groups = {
        node.key.to_user_string(): node.group_name
        for node in graph.asset_nodes
        if node.is_materializable
    }
    assert groups == EXPECTED_ASSET_GROUPS


def test_every_sensor_is_registered():
    assert {s.name for s in _repo(defs).sensor_defs} == EXPECTED_SENSORS


def test_resources_are_the_expected_set():
    assert EXPECTED_RESOURCES <= set(defs.resources or {})


def test_every_named_job_is_watched_by_a_run_failure_alert():
    from lending_pipelines.sensors.run_failures import RUN_FAILURE_SENSORS

    watched = {job.name for sensor in RUN_FAILURE_SENSORS for job in sensor._monitored_jobs}
    named = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert named - watched == set()


def test_every_step_that_calls_a_partners_money_api_runs_in_its_pool():
    """B2C, Stripe and Blnk steps — assets, retries and Launchpad ops alike — claim a slot of
    their pool, whichever job or UI materialization runs them."""
    from lending_pipelines.instance import POOL_LIMITS

    pool_of = {"mpesa": "mpesa_b2c", "stripe_connect": "stripe_payouts", "blnk": "blnk_ledger"}
    steps = {
        node.name: node
        for job in defs.resolve_all_job_defs()
        for node in job.graph.iterate_op_defs()
    }
    money_steps = {
        name: node
        for name, node in steps.items()
        if set(node.required_resource_keys) & set(pool_of)
    }
    assert len(money_steps) >= 13
    wrong = {
        name: node.pool
        for name, node in money_steps.items()
        if node.pool not in {pool_of[key] for key in node.required_resource_keys if key in pool_of}
    }
    assert wrong == {}
    assert {node.pool for node in steps.values() if node.pool} <= set(POOL_LIMITS)


def test_every_workflow_asset_with_a_cadence_has_a_freshness_policy():
    graph = defs.resolve_asset_graph()
    stale_unwatched = [
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_executable
        and graph.get(key).group_name in {"loans", "payouts", "escrow", "credit"}
        and graph.get(key).freshness_policy is None
    ]
    assert stale_unwatched == []
