"""Every environment variable the code reads reaches the pods that run it, and no credential is
ever a plain value: deploy/helm/user-deployments.yaml (code server and run pods) and the
manifests in deploy/k8s (receiver, db-upgrade Job, the shared ConfigMap)."""

from __future__ import annotations

import pytest

from lending_pipelines import crypto, resource_defs
from lending_pipelines.settings import Settings, documented_settings
from lending_pipelines.webhooks import config as webhooks_config
from tests.deploy.manifests import (
    HELM_VALUES,
    USER_DEPLOYMENTS,
    Workload,
    config_maps,
    k8s_containers,
    k8s_documents,
    k8s_workloads,
    load_yaml,
    looks_secret,
    user_code_workloads,
)

SECRET_STORE = "lending-secrets"
SETTINGS_ENV = {env for env, _, _ in documented_settings()}


def _env_constants(module) -> set[str]:
    return {value for name, value in vars(module).items() if name.endswith("_ENV")}


# What each program reads beyond the settings: the resources' secrets (code server, run pods),
# the receiver's tokens, the encryption key.
CODE_LOCATION_ENV = SETTINGS_ENV | _env_constants(resource_defs) | {crypto.KEY_ENV}
RECEIVER_ENV = SETTINGS_ENV | _env_constants(webhooks_config)
# Read only by the receiver (it verifies callbacks; the code location trusts stored events).
RECEIVER_ONLY = {
    "LENDING_STRIPE_WEBHOOK_SECRET",
    "LENDING_STRIPE_WEBHOOK_SECRET_PREVIOUS",
    "LENDING_MPESA_CALLBACK_TOKEN_PREVIOUS",
}
# Read only by the code location (payments, ledger, alerts, stored partner credentials).
CODE_LOCATION_ONLY = {
    "LENDING_ENCRYPTION_KEY",
    "LENDING_STRIPE_API_KEY",
    "LENDING_BLNK_API_KEY",
    "LENDING_ALERT_WEBHOOK_URL",
}
# Present in the Secret only while a rotation or an optional integration needs them.
OPTIONAL_SECRETS = {
    "LENDING_MPESA_CALLBACK_TOKEN_PREVIOUS",
    "LENDING_STRIPE_WEBHOOK_SECRET_PREVIOUS",
    "LENDING_BLNK_API_KEY",
    "LENDING_ALERT_WEBHOOK_URL",
}


def _workload(name_part: str, workloads: list[Workload]) -> Workload:
    (found,) = [w for w in workloads if name_part in w.name]
    return found


def test_the_code_server_and_its_run_pods_get_every_variable_the_code_location_reads():
    (code,) = user_code_workloads()
    missing = CODE_LOCATION_ENV - RECEIVER_ONLY - code.provided(config_maps())
    assert not missing, f"{code.name} lacks {sorted(missing)}"
    assert not RECEIVER_ONLY & code.provided(config_maps()), "least privilege: receiver secrets"


def test_the_receiver_gets_every_variable_it_reads_and_none_of_the_payment_credentials():
    receiver = _workload("Deployment lending-webhooks/webhooks", k8s_workloads())
    missing = RECEIVER_ENV - CODE_LOCATION_ONLY - receiver.provided(config_maps())
    assert not missing, f"{receiver.name} lacks {sorted(missing)}"
    assert not CODE_LOCATION_ONLY & receiver.provided(config_maps())


def test_the_db_upgrade_job_reaches_the_operational_database_and_dagsters_instance():
    workloads = k8s_workloads()
    upgrade = _workload("Job lending-db-upgrade/db-upgrade", workloads)
    pools = _workload("Job lending-db-upgrade/pools-apply", workloads)
    assert "LENDING_DATABASE_URL" in upgrade.secret_refs
    assert pools.values["DAGSTER_HOME"] == load_yaml(USER_DEPLOYMENTS)["global"]["dagsterHome"]
    assert pools.secret_refs["DAGSTER_PG_PASSWORD"] == {
        "name": load_yaml(HELM_VALUES)["global"]["postgresqlSecretName"],
        "key": "postgresql-password",
    }


def test_no_credential_is_a_plain_value_anywhere_and_each_comes_from_the_lending_secret():
    workloads = user_code_workloads() + k8s_workloads()
    for workload in workloads:
        plain = sorted(name for name in workload.values if looks_secret(name))
        assert not plain, f"{workload.name}: {plain} given as plain values"
        assert not workload.secret_sources, f"{workload.name}: envFrom a whole Secret"
        for name, ref in workload.secret_refs.items():
            assert looks_secret(name), f"{workload.name}: {name} need not be a secret"
            if name.startswith("LENDING_"):
                assert ref["name"] == SECRET_STORE and ref["key"] == name, (workload.name, ref)
            assert ref.get("optional", False) == (name in OPTIONAL_SECRETS), (workload.name, name)
    for name, data in config_maps().items():
        leaked = sorted(key for key in data if looks_secret(key))
        assert not leaked, f"ConfigMap {name} holds credentials {leaked}"
    launcher = load_yaml(HELM_VALUES)["runLauncher"]["config"]["k8sRunLauncher"]
    assert not [item for item in launcher["envVars"] if looks_secret(item.split("=")[0])]


def test_every_credential_the_code_reads_counts_as_one_for_the_plain_value_check():
    secrets = {
        *(_env_constants(resource_defs) | _env_constants(webhooks_config) | {crypto.KEY_ENV}),
        "LENDING_DATABASE_URL",
        "LENDING_STRIPE_WEBHOOK_SECRET",
        "LENDING_STRIPE_WEBHOOK_SECRET_PREVIOUS",
        "LENDING_MPESA_CALLBACK_TOKEN_PREVIOUS",
        "LENDING_ALERT_WEBHOOK_URL",
    }
    assert all(looks_secret(name) for name in secrets)
    not_secrets = {"LENDING_TOKEN_RATE", "LENDING_PAYOUT_MINIMUM_TOKENS", "LENDING_WEBHOOKS_URL"}
    assert not any(looks_secret(name) for name in not_secrets)


def test_the_shared_config_is_a_valid_production_configuration_with_no_sandbox_fallback():
    (data,) = config_maps().values()
    assert set(data) == {env for env in SETTINGS_ENV if not looks_secret(env)}
    secrets = {env: "x" * 32 for env in SETTINGS_ENV if looks_secret(env)}
    settings = Settings.from_env({**data, **secrets})
    assert settings.dev_mode is False
    # Every partner has its real base URL, so nothing falls back to the sandbox's paths.
    assert settings.stripe_url == "https://api.stripe.com"
    assert settings.twilio_url == "https://api.twilio.com"
    assert settings.mpesa_base_url == "https://api.safaricom.co.ke"
    assert settings.blnk_url and "sandbox" not in settings.blnk_url
    assert settings.webhooks_url.startswith("https://")
    assert settings.webhooks_host == "0.0.0.0"
    assert settings.mpesa_allowed_networks and settings.webhooks_trusted_proxies


@pytest.mark.parametrize(
    "kind, name", [("Deployment", "lending-webhooks"), ("Service", "lending-webhooks")]
)
def test_the_receiver_is_its_own_workload_outside_the_dagster_releases(kind, name):
    (doc,) = [d for d in k8s_documents() if (d["kind"], d["metadata"]["name"]) == (kind, name)]
    assert doc["metadata"]["labels"]["app.kubernetes.io/component"] == "webhooks"


def test_the_receiver_stays_up_through_rollouts_and_is_probed_on_its_health_route():
    (deployment,) = [d for d in k8s_documents() if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == ["lending", "webhooks"]
    port = int(config_maps()["lending-config"]["LENDING_WEBHOOKS_PORT"])
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    (budget,) = [d for d in k8s_documents() if d["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] >= 1
    (policy,) = [d for d in k8s_documents() if d["kind"] == "NetworkPolicy"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": port}]


def test_the_proxy_body_cap_is_the_largest_per_provider_cap_the_receiver_is_configured_with():
    (ingress,) = [d for d in k8s_documents() if d["kind"] == "Ingress"]
    cap = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    configured = config_maps()["lending-config"]
    caps = [int(v) for k, v in configured.items() if k.startswith("LENDING_WEBHOOKS_MAX_BODY_")]
    assert len(caps) == 3  # M-Pesa, Stripe, Twilio
    assert cap.endswith("k") and int(cap[:-1]) * 1024 == max(caps)
    host = config_maps()["lending-config"]["LENDING_WEBHOOKS_URL"].removeprefix("https://")
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [host]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]


def test_every_lending_pod_runs_the_code_location_image_as_the_images_non_root_user():
    kustomization = load_yaml(USER_DEPLOYMENTS.parent.parent / "k8s" / "kustomization.yaml")
    (image,) = kustomization["images"]
    (deployment,) = load_yaml(USER_DEPLOYMENTS)["deployments"]
    assert image["newName"] == deployment["image"]["repository"]
    for doc in k8s_documents():
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["image"] == image["name"], (doc["metadata"]["name"], container)
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert deployment["podSecurityContext"]["runAsUser"] == 10001


def _lending_commands() -> list[list[str]]:
    commands = []
    for _, container in k8s_containers():
        argv = container["command"]
        if argv[:2] == ["sh", "-c"]:
            commands += [part.split() for part in argv[2].split("&&")]
        else:
            commands.append(argv)
    return [argv for argv in commands if argv[0] == "lending"]


def test_the_pods_run_lending_commands_the_cli_accepts_migrations_before_pool_limits():
    from lending_pipelines.cli import parser

    commands = _lending_commands()
    for argv in commands:
        parser().parse_args(argv[1:])  # exits (SystemExit) on a command the CLI does not have
    assert ["lending", "db", "upgrade"] in commands
    assert ["lending", "pools", "apply"] in commands
    assert ["lending", "webhooks"] in commands
    (job,) = [d for d in k8s_documents() if d["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    # Init containers finish before the main one starts: the schema, then the pools.
    assert "lending db upgrade" in " ".join(pod["initContainers"][0]["command"])
    assert pod["containers"][0]["command"] == ["lending", "pools", "apply"]
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
