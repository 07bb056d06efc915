"""The payouts and escrow workflows keep the layered shape the others copy: imports go down only
(assets -> workflows -> partners, db, domain; resources -> partners; db -> domain), engines and
clients run without Dagster, and no module of theirs outgrows ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lending_pipelines"

# Each layer's modules of these workflows, and what they must never import.
LAYERS = {
    "workflows/payouts": ("lending_pipelines.assets", "lending_pipelines.resources", "dagster"),
    "workflows/escrow": ("lending_pipelines.assets", "lending_pipelines.resources", "dagster"),
    "workflows/loans": ("lending_pipelines.assets", "lending_pipelines.resources", "dagster"),
    "partners/stripe": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.db",
        "dagster",
    ),
    "partners/blnk": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.db",
        "dagster",
    ),
    "partners/fineract": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.db",
        "dagster",
    ),
    "partners/twilio": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.db",
        "dagster",
    ),
    "workflows/messaging.py": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "dagster",
    ),
    "resources/whatsapp.py": (
        "lending_pipelines.db",
        "lending_pipelines.workflows",
        "sqlalchemy",
    ),
    "partners/mpesa": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.db",
        "dagster",
    ),
    "db/payouts": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.partners",
        "dagster",
    ),
    "db/escrow": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.partners",
        "dagster",
    ),
    "db/loans": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.partners",
        "dagster",
    ),
    # db -> domain only: no module of db/ (any workflow's) reaches a partner client or resource.
    "db": ("lending_pipelines.partners", "lending_pipelines.resources"),
    "db/rate_limit.py": ("lending_pipelines.resources", "dagster"),
    "assets/payouts": ("lending_pipelines.sensors",),
    "assets/escrow": ("lending_pipelines.sensors",),
    "assets/loans": ("lending_pipelines.sensors",),
}
SHAPED = [
    "assets/payouts",
    "assets/escrow",
    "assets/loans",
    "workflows/payouts",
    "workflows/escrow",
    "partners/stripe",
    "partners/blnk",
    "workflows/loans",
    "partners/fineract",
    "partners/mpesa",
    "partners/twilio",
    "workflows/messaging.py",
    "resources/whatsapp.py",
    "db/payouts",
    "db/escrow",
    "db/loans",
    "resources/stripe_connect.py",
    "resources/blnk.py",
    "resources/payouts_config.py",
    "resources/escrow_config.py",
    "resources/fineract.py",
    "resources/loans_config.py",
    "resources/mpesa.py",
]


def _modules(relative: str) -> list[Path]:
    path = PACKAGE / relative
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _imports(path: Path) -> set[str]:
    """Absolute names of everything `path` imports (relative imports resolved)."""
    parts = ("lending_pipelines", *path.relative_to(PACKAGE).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from (also for __init__)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
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


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_of_payouts_and_escrow_imports_only_downwards(layer):
    forbidden = LAYERS[layer]
    found = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules(layer)
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in forbidden)
    }
    assert not found, sorted(found)


@pytest.mark.parametrize("part", SHAPED)
def test_no_module_of_payouts_and_escrow_is_over_about_400_lines(part):
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in _modules(part)}
    assert all(lines <= 420 for lines in sizes.values()), sizes


@pytest.mark.parametrize("workflow", ["payouts", "escrow", "loans"])
def test_a_workflow_package_exports_its_definitions(workflow):
    import importlib

    import dagster as dg

    module = importlib.import_module(f"lending_pipelines.assets.{workflow}")
    assert isinstance(module.defs, dg.Definitions)
    assert module.defs.assets and module.defs.jobs and module.defs.schedules


@pytest.mark.parametrize("part", SHAPED)
def test_payouts_and_escrow_use_import_dagster_as_dg(part):
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _modules(part)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dagster"
    ]
    assert not offenders


def test_the_code_location_has_exactly_one_definitions_at_module_scope():
    """Dagster's module autodiscovery (dagster definitions validate, the webserver) refuses a
    module holding several Definitions: the workflows' parts are merged inside one."""
    import dagster as dg

    import lending_pipelines.definitions as module

    found = [name for name, value in vars(module).items() if isinstance(value, dg.Definitions)]
    assert found == ["defs"]


def test_the_payouts_and_escrow_definitions_use_no_deprecated_dagster_call():
    import subprocess
    import sys

    loaded = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::DeprecationWarning",
            "-c",
            "import lending_pipelines.assets.payouts, lending_pipelines.assets.escrow, "
            "lending_pipelines.assets.loans",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
