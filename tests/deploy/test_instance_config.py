"""The production Dagster instances, through Dagster's own instance-config validation:
deploy/dagster.yaml (one machine) and the instance the `dagster` chart renders from
deploy/helm/values.yaml (Kubernetes) both carry lending_pipelines.instance's rules."""

from __future__ import annotations

import pytest
import yaml

pytest.importorskip("dagster_k8s", reason="the k8s extra (make install) is not installed")

from dagster._config import process_config, validate_config
from dagster._core.instance.config import ConcurrencyConfig, dagster_instance_config
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
from dagster._serdes.config_class import class_from_code_pointer

from lending_pipelines.instance import (
    DEFAULT_POOL_LIMIT,
    POOL_LIMITS,
    SERIAL_TAG,
    instance_config,
)
from tests.deploy.manifests import DEPLOY, HELM_VALUES, chart_instance, load_yaml

PRODUCTION_INSTANCES = ("deploy/dagster.yaml", "helm instance")
# Run tags that group runs in the UI and limit nothing (a limit on them would serialise a whole
# workflow); every other `lending/` tag on a job must have a run-concurrency limit.
LABEL_TAGS = {"lending/workflow"}


def _instance(which: str) -> dict:
    if which == "deploy/dagster.yaml":
        return load_yaml(DEPLOY / "dagster.yaml")
    return chart_instance(load_yaml(HELM_VALUES))


def _validated(config: dict, tmp_path) -> dict:
    """Dagster's validation of a dagster.yaml, then of each configurable class's own config."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, _ = dagster_instance_config(str(tmp_path))
    for key in ("run_launcher", "run_coordinator", "run_storage", "event_log_storage",
                "schedule_storage", "scheduler", "compute_logs"):  # fmt: skip
        if key not in validated:
            continue
        cls = class_from_code_pointer(validated[key]["module"], validated[key]["class"])
        result = validate_config(cls.config_type(), validated[key].get("config") or {})
        assert result.success, (key, [error.message for error in result.errors])
    return validated


@pytest.mark.parametrize("which", PRODUCTION_INSTANCES)
def test_production_instance_passes_dagsters_validation_with_the_code_locations_rules(
    which, tmp_path
):
    validated = _validated(_instance(which), tmp_path)
    expected = instance_config()
    assert validated["concurrency"] == expected["concurrency"]
    assert validated["run_monitoring"] == expected["run_monitoring"]
    assert validated["freshness"] == {"enabled": True}
    assert validated["telemetry"] == {"enabled": False}
    # The rules resolve into the queue's limits as the daemon reads them: the instance's
    # QueuedRunCoordinator (the default one when the file names none) merged with `concurrency`.
    coordinator_config = (validated.get("run_coordinator") or {}).get("config") or {}
    coordinator = QueuedRunCoordinator.from_config_value(
        None, process_config(QueuedRunCoordinator.config_type(), coordinator_config).value
    )
    resolved = ConcurrencyConfig.from_concurrency_settings(
        validated["concurrency"], coordinator.get_run_queue_config()
    )
    assert resolved.run_queue_config.max_concurrent_runs == 10
    assert resolved.pool_config.default_pool_limit == DEFAULT_POOL_LIMIT
    limits = [dict(limit) for limit in resolved.run_queue_config.tag_concurrency_limits]
    assert limits == [{"key": SERIAL_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]


def test_the_helm_instance_launches_each_run_in_its_own_pod_through_the_queue(tmp_path):
    validated = _validated(_instance("helm instance"), tmp_path)
    assert (validated["run_launcher"]["module"], validated["run_launcher"]["class"]) == (
        "dagster_k8s",
        "K8sRunLauncher",
    )
    assert validated["run_coordinator"]["class"] == "QueuedRunCoordinator"
    # No queue limits on the coordinator: they would conflict with the concurrency block.
    assert "config" not in validated["run_coordinator"]
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert validated[storage]["module"].startswith("dagster_postgres.")
        assert validated[storage]["config"]["postgres_db"]["password"] == {
            "env": "DAGSTER_PG_PASSWORD"
        }
    assert validated["scheduler"]["class"] == "DagsterDaemonScheduler"
    launcher = validated["run_launcher"]["config"]
    # Kubernetes never restarts a run pod on its own: a money-moving run is not re-run by it.
    assert launcher["run_k8s_config"]["job_spec_config"]["backoffLimit"] == 0
    assert launcher["resources"]["requests"] and launcher["resources"]["limits"]["memory"]
    assert launcher["security_context"]["runAsNonRoot"] is True


def test_the_helm_values_run_the_daemon_and_keep_dagsters_storage_password_out_of_values():
    values = load_yaml(HELM_VALUES)
    assert values["dagsterDaemon"]["enabled"] is True
    assert values["postgresql"]["enabled"] is False, "Dagster's database is managed outside"
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["dagster-user-deployments"]["enableSubchart"] is False


def test_every_run_tag_and_pool_used_in_code_has_a_limit_in_both_production_instances():
    from lending_pipelines.definitions import defs

    jobs = list(defs.resolve_all_job_defs())
    pools = {node.pool for job in jobs for node in job.graph.iterate_op_defs() if node.pool}
    tag_keys = {key for job in jobs for key in job.tags if key.startswith("lending/")}
    assert pools and SERIAL_TAG in tag_keys
    # Every pool has its own stored limit (`lending pools apply`, run by the db-upgrade Job) and
    # the default covers any other.
    assert pools <= set(POOL_LIMITS)
    for which in PRODUCTION_INSTANCES:
        concurrency = _instance(which)["concurrency"]
        assert concurrency["pools"]["default_limit"] == DEFAULT_POOL_LIMIT
        limited = {limit["key"] for limit in concurrency["runs"]["tag_concurrency_limits"]}
        assert tag_keys - LABEL_TAGS <= limited, which


def test_the_workspace_points_at_the_code_location_the_user_deployments_release_serves():
    import tomllib

    from lending_pipelines.settings import PROJECT_ROOT
    from tests.deploy.manifests import USER_DEPLOYMENTS

    values = load_yaml(HELM_VALUES)
    workspace = values["dagsterWebserver"]["workspace"]
    (deployment,) = load_yaml(USER_DEPLOYMENTS)["deployments"]
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert workspace["enabled"] is True
    assert workspace["servers"] == [
        {
            "host": deployment["name"],
            "port": deployment["port"],
            "name": pyproject["tool"]["dagster"]["code_location_name"],
        }
    ]


def test_run_pods_get_one_sizing_whichever_of_launcher_and_code_location_the_chart_applies():
    from tests.deploy.manifests import USER_DEPLOYMENTS

    launcher = load_yaml(HELM_VALUES)["runLauncher"]["config"]["k8sRunLauncher"]
    (deployment,) = load_yaml(USER_DEPLOYMENTS)["deployments"]
    # includeConfigInLaunchedRuns passes the deployment's resources to its run pods.
    assert deployment["resources"] == launcher["resources"]
    assert launcher["resources"]["limits"]["memory"] == "2Gi"
