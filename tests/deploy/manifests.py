"""Reading the deployment files the way the charts and Kubernetes will (no helm binary here).

`chart_instance_yaml` mirrors the `dagster` chart's `configmap-instance.yaml` (chart 1.13.x) for
the values deploy/helm/values.yaml uses: the storage blocks, the run launcher, the run
coordinator, run monitoring, telemetry, then `additionalInstanceConfig` appended as is. It
refuses values it does not mirror, so a new key in values.yaml needs a look at the template.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lending_pipelines.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
USER_DEPLOYMENTS = DEPLOY / "helm" / "user-deployments.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
RELEASE_NAMESPACE = "lending"

_RUN_K8S_CONFIG_KEYS = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobConfig": "job_config",
    "jobMetadata": "job_metadata",
    "jobSpecConfig": "job_spec_config",
}
_K8S_LAUNCHER_KEYS = {
    "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
    "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels", "resources",
    "securityContext", "runK8sConfig", "failPodOnRunFailure",
}  # fmt: skip


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _postgres_storage(values: Mapping[str, Any], module: str, cls: str) -> dict:
    pg = values["postgresql"]
    return {
        "module": module,
        "class": cls,
        "config": {
            "postgres_db": {
                "username": pg["postgresqlUsername"],
                "password": {"env": "DAGSTER_PG_PASSWORD"},
                "hostname": pg["postgresqlHost"],
                "db_name": pg["postgresqlDatabase"],
                "port": pg["service"]["port"],
                "params": pg.get("postgresqlParams") or {},
            }
        },
    }


def _k8s_run_launcher(values: Mapping[str, Any]) -> dict:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    unknown = set(launcher) - _K8S_LAUNCHER_KEYS
    assert not unknown, f"values the template mirror does not render: {sorted(unknown)}"
    config: dict[str, Any] = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or RELEASE_NAMESPACE,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
        + [item["name"] for item in launcher.get("envConfigMaps") or []],
    }
    if launcher.get("envSecrets"):
        config["env_secrets"] = [item["name"] for item in launcher["envSecrets"]]
    optional = {
        "envVars": "env_vars",
        "volumeMounts": "volume_mounts",
        "volumes": "volumes",
        "labels": "labels",
        "resources": "resources",
        "securityContext": "security_context",
    }
    for key, name in optional.items():
        if launcher.get(key):
            config[name] = launcher[key]
    if launcher.get("runK8sConfig"):
        config["run_k8s_config"] = {
            _RUN_K8S_CONFIG_KEYS[key]: value for key, value in launcher["runK8sConfig"].items()
        }
    if launcher.get("failPodOnRunFailure") is not None:
        config["fail_pod_on_run_failure"] = launcher["failPodOnRunFailure"]
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def chart_instance(values: Mapping[str, Any]) -> dict[str, Any]:
    """The dagster.yaml the `dagster` chart renders into its `<release>-instance` ConfigMap.

    Built as the text the chart writes (keys in its order, additionalInstanceConfig appended),
    then parsed, so a key given twice is caught as it would be in the ConfigMap."""
    assert values["scheduler"]["type"] == "DagsterDaemonScheduler"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["computeLogManager"]["type"] == "NoOpComputeLogManager"
    daemon = values["dagsterDaemon"]
    sections: list[tuple[str, Any]] = [
        ("scheduler", {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"}),
        (
            "schedule_storage",
            _postgres_storage(
                values, "dagster_postgres.schedule_storage", "PostgresScheduleStorage"
            ),
        ),
        ("run_launcher", _k8s_run_launcher(values)),
        (
            "run_storage",
            _postgres_storage(values, "dagster_postgres.run_storage", "PostgresRunStorage"),
        ),
        (
            "event_log_storage",
            _postgres_storage(values, "dagster_postgres.event_log", "PostgresEventLogStorage"),
        ),
    ]
    if daemon["enabled"] and daemon["runCoordinator"]["enabled"]:
        assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
        queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"] or {}
        coordinator: dict[str, Any] = {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
        }
        rendered = {
            "max_concurrent_runs": queued.get("maxConcurrentRuns"),
            "tag_concurrency_limits": queued.get("tagConcurrencyLimits"),
            "dequeue_interval_seconds": queued.get("dequeueIntervalSeconds"),
        }
        if any(value not in (None, []) for value in rendered.values()):
            coordinator["config"] = {k: v for k, v in rendered.items() if v not in (None, [])}
        sections.append(("run_coordinator", coordinator))
    sections.append(("compute_logs", {"module": "dagster._core.storage.noop_compute_log_manager",
                                      "class": "NoOpComputeLogManager"}))  # fmt: skip
    monitoring = daemon.get("runMonitoring") or {}
    if daemon["enabled"] and monitoring.get("enabled"):
        sections.append(
            (
                "run_monitoring",
                {
                    "enabled": True,
                    "start_timeout_seconds": monitoring["startTimeoutSeconds"],
                    "poll_interval_seconds": monitoring["pollIntervalSeconds"],
                    "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
                },
            )
        )
    sections.append(("telemetry", {"enabled": values["telemetry"]["enabled"]}))
    sections.extend((values.get("additionalInstanceConfig") or {}).items())
    keys = [key for key, _ in sections]
    duplicated = sorted({key for key in keys if keys.count(key) > 1})
    assert not duplicated, f"dagster.yaml would hold these keys twice: {duplicated}"
    text = "".join(yaml.safe_dump({key: value}, sort_keys=False) for key, value in sections)
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Workload:
    """One container's environment: plain values, secretKeyRefs and ConfigMaps it reads."""

    name: str
    values: dict[str, str]
    secret_refs: dict[str, dict]
    config_maps: tuple[str, ...]
    secret_sources: tuple[str, ...]  # envFrom secrets: every key becomes a variable

    def provided(self, config_maps: Mapping[str, Mapping[str, str]]) -> set[str]:
        names = set(self.values) | set(self.secret_refs)
        for name in self.config_maps:
            names |= set(config_maps[name])
        return names


def _workload(name: str, env: list[dict], config_maps, secrets) -> Workload:
    values: dict[str, str] = {}
    refs: dict[str, dict] = {}
    for item in env or []:
        if "valueFrom" in item:
            source = item["valueFrom"]
            assert set(source) == {"secretKeyRef"}, (name, item["name"], source)
            refs[item["name"]] = source["secretKeyRef"]
        else:
            values[item["name"]] = item["value"]
    return Workload(name, values, refs, tuple(config_maps), tuple(secrets))


def user_code_workloads() -> list[Workload]:
    """The code server of each deployment in user-deployments.yaml (its run pods inherit it)."""
    rendered = []
    for deployment in load_yaml(USER_DEPLOYMENTS)["deployments"]:
        assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
        rendered.append(
            _workload(
                f"code location {deployment['name']}",
                deployment.get("env") or [],
                [item["name"] for item in deployment.get("envConfigMaps") or []],
                [item["name"] for item in deployment.get("envSecrets") or []],
            )
        )
    return rendered


def k8s_documents() -> list[dict]:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    return [doc for path in kustomization["resources"] for doc in load_all(K8S / path)]


def _pod_spec(doc: dict) -> dict | None:
    if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
        return doc["spec"]["template"]["spec"]
    return None


def k8s_containers() -> Iterator[tuple[dict, dict]]:
    for doc in k8s_documents():
        spec = _pod_spec(doc)
        if spec is None:
            continue
        for container in (spec.get("initContainers") or []) + spec["containers"]:
            yield doc, container


def k8s_workloads() -> list[Workload]:
    rendered = []
    for doc, container in k8s_containers():
        env_from = container.get("envFrom") or []
        rendered.append(
            _workload(
                f"{doc['kind']} {doc['metadata']['name']}/{container['name']}",
                container.get("env") or [],
                [item["configMapRef"]["name"] for item in env_from if "configMapRef" in item],
                [item["secretRef"]["name"] for item in env_from if "secretRef" in item],
            )
        )
    return rendered


def config_maps() -> dict[str, dict[str, str]]:
    return {
        doc["metadata"]["name"]: doc["data"]
        for doc in k8s_documents()
        if doc["kind"] == "ConfigMap"
    }


@dataclass(frozen=True)
class Instruction:
    stage: int
    command: str
    arguments: str


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped, numbered by
    build stage (each FROM starts the next one; ARGs before the first FROM are stage 0)."""
    joined, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    stage, instructions = 0, []
    for line in joined:
        command, _, arguments = line.partition(" ")
        if command.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, command.upper(), arguments.strip()))
    return instructions


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) CMD/ENTRYPOINT/RUN as its argv; a shell form split like sh."""
    if arguments.startswith("["):
        return yaml.safe_load(arguments)
    return shlex.split(arguments)


SECRET_SUFFIXES = ("_TOKEN", "_KEY", "_SECRET", "_PASSWORD", "DATABASE_URL", "_WEBHOOK_URL")


def looks_secret(name: str) -> bool:
    """A variable that holds a credential: TOKEN, KEY, SECRET, PASSWORD, a database URL, an alert
    webhook URL (its path is the credential). LENDING_TOKEN_RATE and LENDING_PAYOUT_MINIMUM_TOKENS
    count tokens, not credentials; LENDING_WEBHOOKS_URL is the receiver's public address."""
    base = re.sub(r"_PREVIOUS$", "", name)
    return base.endswith(SECRET_SUFFIXES) or "PASSWORD" in name or "SECRET" in name
