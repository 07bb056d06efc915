"""The Dagster instance that `make dev` writes, and the production copy in deploy/."""

import yaml
from dagster import DagsterInstance
from sqlalchemy.engine import make_url

from lending_pipelines.db.server import drop_database, ensure_database
from lending_pipelines.instance import SERIAL_TAG, instance_config, write_instance_config
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
    finally:
        drop_database(storage)


def test_production_instance_has_the_same_run_concurrency_rules():
    deployed = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert deployed["concurrency"] == instance_config()["concurrency"]
    assert deployed["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
