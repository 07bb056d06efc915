"""The manifests and the Kubernetes parts of the Helm values against the Kubernetes API's models:
a misspelt field (which kubectl or the chart would drop or refuse at deploy time) fails here."""

from __future__ import annotations

import pytest

pytest.importorskip("kubernetes", reason="the k8s extra (make install) is not installed")

from tests.deploy.kube_schema import document_problems, problems  # noqa: E402
from tests.deploy.manifests import HELM_VALUES, USER_DEPLOYMENTS, k8s_documents, load_yaml  # noqa: E402

CHART_ONLY_PROBE_KEYS = {"enabled"}  # the chart's switch, removed before it renders the probe


def _probe(probe: dict) -> dict:
    return {key: value for key, value in probe.items() if key not in CHART_ONLY_PROBE_KEYS}


def test_every_manifest_is_a_valid_object_of_its_kubernetes_kind():
    documents = k8s_documents()
    assert {doc["kind"] for doc in documents} >= {
        "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Ingress",
        "Job",
    }  # fmt: skip
    found = [problem for doc in documents for problem in document_problems(doc)]
    assert not found, found


def test_the_code_locations_kubernetes_settings_are_valid_objects():
    (deployment,) = load_yaml(USER_DEPLOYMENTS)["deployments"]
    checks = [
        (deployment["env"], "list[V1EnvVar]", "env"),
        (deployment["envConfigMaps"], "list[V1ConfigMapEnvSource]", "envConfigMaps"),
        (deployment["volumes"], "list[V1Volume]", "volumes"),
        (deployment["volumeMounts"], "list[V1VolumeMount]", "volumeMounts"),
        (deployment["podSecurityContext"], "V1PodSecurityContext", "podSecurityContext"),
        (deployment["securityContext"], "V1SecurityContext", "securityContext"),
        (deployment["resources"], "V1ResourceRequirements", "resources"),
        (_probe(deployment["readinessProbe"]), "V1Probe", "readinessProbe"),
        (_probe(deployment["startupProbe"]), "V1Probe", "startupProbe"),
        (_probe(deployment["livenessProbe"]), "V1Probe", "livenessProbe"),
    ]
    found = [p for value, kind, path in checks for p in problems(value, kind, path)]
    assert not found, found


def test_the_run_pods_and_dagsters_own_pods_have_valid_kubernetes_settings():
    values = load_yaml(HELM_VALUES)
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    checks = [
        (launcher["resources"], "V1ResourceRequirements", "resources", False),
        (launcher["securityContext"], "V1SecurityContext", "securityContext", False),
        (launcher["runK8sConfig"]["jobSpecConfig"], "V1JobSpec", "jobSpecConfig", True),
        (values["dagsterDaemon"]["resources"], "V1ResourceRequirements", "daemon", False),
        (values["dagsterWebserver"]["resources"], "V1ResourceRequirements", "webserver", False),
    ]
    found = [
        p
        for value, kind, path, partial in checks
        for p in problems(value, kind, path, partial=partial)
    ]
    assert not found, found
