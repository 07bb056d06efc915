"""The dev tooling (partner sandbox, demo seeds, dev secrets, `lending dev`) is the `lending_dev`
package: importable from a source checkout, never in the wheel the deployment image installs,
and never imported by the production package when it loads."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from lending_pipelines.settings import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "lending_pipelines"
DEV_PACKAGE = PROJECT_ROOT / "lending_dev"


def _top_level_imports(path: Path, package: tuple[str, ...], *, lazy: bool = False) -> set[str]:
    """Absolute names `path` imports when it is imported (and inside functions with `lazy`)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree) if lazy else tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ((node.module,) if node.module else ()))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _package_of(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return parts if path.name == "__init__.py" else parts[:-1]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LENDING_DEV_MODE": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_production_module_imports_the_dev_tooling_when_it_loads():
    found = sorted(
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        for name in _top_level_imports(path, _package_of(path))
        if name.split(".")[0] == "lending_dev"
        or name.startswith(("lending_pipelines.sandbox", "lending_pipelines.seed"))
    )
    assert not found, found
    assert not (PACKAGE / "sandbox").exists() and not (PACKAGE / "seed").exists()


def test_the_seeds_and_the_sandbox_share_the_demo_world_without_importing_each_other():
    def imports(sub: str) -> set[str]:
        return {
            f"{path.relative_to(PROJECT_ROOT)} imports {name}"
            for path in (DEV_PACKAGE / sub).rglob("*.py")
            for name in _top_level_imports(path, _package_of(path), lazy=True)
        }

    assert not {i for i in imports("sandbox") if " imports lending_dev.seed" in i}
    assert not {i for i in imports("seed") if " imports lending_dev.sandbox" in i}
    assert {i for i in imports("seed") if " imports lending_dev.demo" in i}


def test_the_resource_definitions_load_without_the_receiver_app():
    result = _python(
        "import sys, lending_pipelines.resource_defs\n"
        "print(sorted(m for m in sys.modules if m in {'lending_pipelines.webhooks.app'}"
        " or m.split('.')[0] == 'lending_dev'))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_dev_commands_without_the_dev_tooling_say_it_is_a_production_install():
    for command in ("dev", "sandbox", "seed"):
        result = _python(
            "import sys\n"
            "sys.modules['lending_dev'] = None  # as in the production image\n"
            "from lending_pipelines.cli import main\n"
            f"sys.exit(main([{command!r}]))"
        )
        assert result.returncode == 1, (command, result.stderr)
        assert f"lending {command}: the dev tooling (the lending_dev package) is not installed" in (
            result.stderr
        )
        assert "production install" in result.stderr and "Traceback" not in result.stderr


def test_the_dev_tooling_is_importable_from_the_dev_environment_outside_the_checkout(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import lending_dev.supervisor, lending_dev.sandbox.app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def _uv() -> list[str]:
    """uv as `make test` runs it (`uv run` names its binary in $UV), else the Makefile's way."""
    if os.environ.get("UV"):
        return [os.environ["UV"]]
    if shutil.which("uv"):
        return [shutil.which("uv")]
    return ["python3.11", "-m", "uv"]


def test_the_wheel_ships_the_code_location_and_none_of_the_dev_tooling(tmp_path):
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run(
        [
            *[*_uv(), "build", "--wheel", "--out-dir", str(tmp_path)],
            *["--python", sys.executable, str(PROJECT_ROOT)],
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("lending_pipelines-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {
        "lending_pipelines",
        wheel.name.removesuffix("-py3-none-any.whl") + ".dist-info",
    }
    assert "lending_pipelines/definitions.py" in names
    assert "lending_pipelines/cli.py" in names
    dev = [
        name
        for name in names
        if name.startswith(
            ("lending_dev/", "lending_pipelines/sandbox/", "lending_pipelines/seed/")
        )
        or "/sandbox/" in name
        or "/seed/" in name
    ]
    assert not dev, dev
