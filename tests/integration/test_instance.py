"""The Dagster instance that `make dev` writes, and the production copy in deploy/."""

import yaml
from dagster import DagsterInstance, RunsFilter
from sqlalchemy.engine import make_url

from lending_pipelines.db.server import drop_database, ensure_database
from lending_pipelines.instance import (
    DEFAULT_POOL_LIMIT,
    POOL_LIMITS,
    RUN_MAX_RUNTIME_SECONDS,
    SERIAL_TAG,
    apply_pool_limits,
    fail_orphaned_runs,
    instance_config,
    serial_tags,
    write_instance_config,
)
from lending_pipelines.settings import PROJECT_ROOT


def test_dev_instance_uses_postgres_storage_and_one_run_per_serial_job(
    tmp_path, db_url, monkeypatch
):
    url = make_url(db_url)
    storage = url.set(drivername="postgresql+psycopg2", database=f"{url.database}_dagster")
    ensure_database(storage)
    monkeypatch.setenv("LENDING_DAGSTER_STORAGE_URL", storage.render_as_string(hide_password=False))
    write_instance_config(tmp_path)
    try:
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
            assert {"key": SERIAL_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in [
                dict(limit) for limit in limits
            ]
            assert instance.run_coordinator.dequeue_interval_seconds == 1
    finally:
        drop_database(storage)


def test_production_instance_has_the_same_run_concurrency_rules():
    deployed = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert deployed["concurrency"] == instance_config()["concurrency"]
    assert deployed["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}


def test_dev_and_production_instances_fail_runs_still_in_flight_after_the_maximum_runtime(
    tmp_path, monkeypatch
):
    deployed = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert deployed["run_monitoring"] == instance_config()["run_monitoring"]
    monitoring = instance_config()["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["max_runtime_seconds"] == RUN_MAX_RUNTIME_SECONDS > 0
    assert monitoring["start_timeout_seconds"] > 0


def test_runs_left_in_flight_by_a_crash_are_marked_failed_and_unblock_their_job(
    tmp_path, db_url, monkeypatch
):
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    url = make_url(db_url)
    storage = url.set(drivername="postgresql+psycopg2", database=f"{url.database}_orphans")
    ensure_database(storage)
    monkeypatch.setenv("LENDING_DAGSTER_STORAGE_URL", storage.render_as_string(hide_password=False))
    write_instance_config(tmp_path)
    tags = serial_tags("loan_polling_job")
    try:
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            started = create_run_for_test(
                instance, job_name="loan_polling_job", status=DagsterRunStatus.STARTED, tags=tags
            )
            starting = create_run_for_test(
                instance, job_name="loan_polling_job", status=DagsterRunStatus.STARTING, tags=tags
            )
            done = create_run_for_test(
                instance, job_name="loan_polling_job", status=DagsterRunStatus.SUCCESS, tags=tags
            )
            # The crashed run's polling step held the pool's only slot.
            instance.event_log_storage.set_concurrency_slots("fineract_polling", 1)
            claim = instance.event_log_storage.claim_concurrency_slot(
                "fineract_polling", started.run_id, "loan_tracking"
            )
            assert claim.is_claimed
        assert set(fail_orphaned_runs(tmp_path)) == {started.run_id, starting.run_id}
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            assert instance.get_run_by_id(started.run_id).status == DagsterRunStatus.FAILURE
            assert instance.get_run_by_id(starting.run_id).status == DagsterRunStatus.FAILURE
            assert instance.get_run_by_id(done.run_id).status == DagsterRunStatus.SUCCESS
            in_flight = instance.get_run_records(
                filters=RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])
            )
            assert in_flight == [], "nothing holds the job's one-at-a-time slot any more"
            failure = instance.all_logs(started.run_id)[-1]
            assert "lending dev" in failure.message
            pool = instance.event_log_storage.get_concurrency_info("fineract_polling")
            assert pool.active_slot_count == 0, "the crashed run's pool slot is given back"
    finally:
        drop_database(storage)


def test_every_pool_is_limited_and_payout_workers_get_five_slots(tmp_path, db_url, monkeypatch):
    url = make_url(db_url)
    storage = url.set(drivername="postgresql+psycopg2", database=f"{url.database}_pools")
    ensure_database(storage)
    monkeypatch.setenv("LENDING_DAGSTER_STORAGE_URL", storage.render_as_string(hide_password=False))
    write_instance_config(tmp_path)
    try:
        assert apply_pool_limits(tmp_path) == POOL_LIMITS
        with DagsterInstance.from_config(str(tmp_path)) as instance:
            config = instance.get_concurrency_config().pool_config
            assert config.default_pool_limit == DEFAULT_POOL_LIMIT == 1
            storage_ = instance.event_log_storage
            limits = {pool: storage_.get_concurrency_info(pool).slot_count for pool in POOL_LIMITS}
            assert limits == {
                "fineract_polling": 1, "mpesa_b2c": 1, "blnk_ledger": 1, "stripe_payouts": 5
            }  # fmt: skip
    finally:
        drop_database(storage)


def test_every_pool_used_in_code_has_a_configured_limit():
    from lending_pipelines.definitions import defs

    pools = {
        node.pool
        for job in defs.resolve_all_job_defs()
        for node in job.graph.iterate_op_defs()
        if node.pool
    }
    assert pools and pools <= set(POOL_LIMITS)


def test_freshness_is_evaluated_in_dev_and_production():
    deployed = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert deployed["freshness"] == instance_config()["freshness"] == {"enabled": True}
