"""deploy/Dockerfile, checked for what can be checked without building it (no docker here)."""

from __future__ import annotations

import tomllib

from lending_pipelines.settings import PROJECT_ROOT
from tests.deploy.manifests import (
    DOCKERFILE,
    USER_DEPLOYMENTS,
    dockerfile_instructions,
    exec_form,
    load_yaml,
)

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def _final_stage() -> list:
    instructions = dockerfile_instructions()
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def _uv_syncs() -> list[list[str]]:
    syncs = []
    for instruction in dockerfile_instructions():
        if instruction.command != "RUN":
            continue
        for part in instruction.arguments.split("&&"):
            argv = exec_form(part.strip())
            if argv[:2] == ["uv", "sync"]:
                syncs.append(argv)
    return syncs


def test_the_image_is_multi_stage_and_its_final_stage_runs_as_a_non_root_user():
    stages = [i for i in dockerfile_instructions() if i.command == "FROM"]
    assert len(stages) >= 3, "uv, build and runtime stages"
    final = _final_stage()
    (user,) = [i.arguments for i in final if i.command == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid (runAsNonRoot can check it)"
    # The pods' security contexts run as that same user.
    (deployment,) = load_yaml(USER_DEPLOYMENTS)["deployments"]
    assert deployment["podSecurityContext"]["runAsUser"] == int(uid)
    # Nothing in the final stage after USER switches back to root.
    after = final[[i.command for i in final].index("USER") :]
    assert [i.command for i in after].count("USER") == 1


def test_dependencies_are_installed_from_the_lock_without_the_dev_group_but_with_dagster_k8s():
    syncs = _uv_syncs()
    assert syncs, "the image installs with uv sync"
    for argv in syncs:
        assert "--frozen" in argv, argv
        assert "--no-dev" in argv, argv
        assert not {"--dev", "--all-groups", "--group", "--only-dev", "--all-extras"} & set(argv)
        assert argv[argv.index("--extra") + 1] == "k8s"
    assert "k8s" in PYPROJECT["project"]["optional-dependencies"]
    assert "dev" in PYPROJECT["dependency-groups"]


def test_the_dagster_k8s_pin_is_in_the_release_line_of_dagster():
    (k8s,) = PYPROJECT["project"]["optional-dependencies"]["k8s"]
    (dagster,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("dagster==")]
    (postgres,) = [
        d for d in PYPROJECT["project"]["dependencies"] if d.startswith("dagster-postgres==")
    ]
    # Integrations are versioned 0.<minor + 16>.<patch> next to dagster 1.<minor>.<patch>.
    assert k8s.split("==")[1] == postgres.split("==")[1]
    major_minor_patch = dagster.split("==")[1].split(".")
    assert k8s == f"dagster-k8s==0.{int(major_minor_patch[1]) + 16}.{major_minor_patch[2]}"


def test_only_the_code_location_and_dbt_are_copied_into_the_image():
    sources = []
    for instruction in dockerfile_instructions():
        if instruction.command != "COPY" or "--from=" in instruction.arguments:
            continue
        sources += [
            part for part in instruction.arguments.split()[:-1] if not part.startswith("--")
        ]
    assert set(sources) == {"pyproject.toml", "uv.lock", "README.md", "lending_pipelines", "dbt"}
    ignore = [
        line.strip()
        for line in (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "**", "the build context holds only what is allowed back in"
    allowed = {line.removeprefix("!").split("/")[0] for line in ignore if line.startswith("!")}
    assert allowed == set(sources), "re-included: exactly what the Dockerfile copies"


def test_the_dbt_manifest_is_prepared_at_build_time_and_checked_fresh_in_the_final_stage():
    instructions = dockerfile_instructions()
    prepares = [
        i for i in instructions if i.command == "RUN" and "analytics_dbt prepare" in i.arguments
    ]
    assert prepares and all(i.stage < max(x.stage for x in instructions) for i in prepares)
    final_runs = " ".join(i.arguments for i in _final_stage() if i.command == "RUN")
    assert "manifest_is_stale" in final_runs
    # The runtime stage copies the prepared project, target/ included, from the build stage.
    copies = [i.arguments for i in _final_stage() if i.command == "COPY"]
    assert any(c.startswith("--from=build") and c.split()[-2] == "/app/dbt" for c in copies)


def test_the_image_serves_the_code_location_module_that_pyproject_names():
    module = PYPROJECT["tool"]["dagster"]["module_name"]
    assert module == PYPROJECT["tool"]["dg"]["project"]["code_location_target_module"]
    (cmd,) = [i.arguments for i in _final_stage() if i.command == "CMD"]
    argv = exec_form(cmd)
    assert argv[:5] == ["dagster", "api", "grpc", "-m", module]
    (deployment,) = load_yaml(USER_DEPLOYMENTS)["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module]
    env = " ".join(i.arguments for i in _final_stage() if i.command == "ENV")
    assert "LENDING_DEV_MODE=false" in env
