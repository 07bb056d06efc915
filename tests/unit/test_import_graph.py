"""The code location's import graph, walked from the source (module-level imports; imports under
`if TYPE_CHECKING` and inside functions are not edges): no cycle, and none of the back-edges
ARCHITECTURE.md forbids anywhere in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lending_pipelines"
ROOT = "lending_pipelines"


def _module_name(path: Path) -> str:
    parts = (ROOT, *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _statements(body: list[ast.stmt]):
    """Statements run at import time, through if/try/with blocks, skipping TYPE_CHECKING."""
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.If | ast.With):
            yield from _statements(node.body)
            yield from _statements(getattr(node, "orelse", []))
        elif isinstance(node, ast.Try):
            yield from _statements(node.body)
            for handler in node.handlers:
                yield from _statements(handler.body)
        else:
            yield node


def imports_of(name: str) -> set[str]:
    """Every name `name` imports at module level, absolute (relative imports resolved)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _statements(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _edges(name: str) -> set[str]:
    """Modules `name` imports; its own parent packages are not edges (Python imports a package
    before any of its submodules, whichever imports it)."""
    return {
        target
        for target in imports_of(name)
        if target in MODULES and target != name and not name.startswith(target + ".")
    }


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {name: _edges(name) for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return components


def test_the_import_graph_has_no_cycle():
    assert _cycles() == []


# Where a module lives → what it must never import (ARCHITECTURE.md, "Layout").
FORBIDDEN = {
    "lending_pipelines.db": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.sensors",
        "lending_pipelines.webhooks",
        "dagster",
    ),
    "lending_pipelines.resources": (
        "lending_pipelines.assets",
        "lending_pipelines.workflows",
        "lending_pipelines.sensors",
        "lending_pipelines.webhooks",
    ),
    "lending_pipelines.partners": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.db",
        "lending_pipelines.sensors",
        "dagster",
    ),
    "lending_pipelines.domain": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.workflows",
        "lending_pipelines.db",
        "lending_pipelines.partners",
        "lending_pipelines.sensors",
        "lending_pipelines.webhooks",
        "lending_pipelines.settings",
        "dagster",
        "sqlalchemy",
        "httpx",
    ),
    "lending_pipelines.workflows": (
        "lending_pipelines.assets",
        "lending_pipelines.resources",
        "lending_pipelines.sensors",
        "dagster",
    ),
    "lending_pipelines.resource_defs": ("lending_pipelines.webhooks.app",),
    "lending_pipelines": ("lending_dev",),  # the wheel ships no dev tooling
}
# The database resource is where a connection pool is made: the one resource that uses db/.
PERSISTING_RESOURCE = "lending_pipelines.resources.database"


def _matches(name: str, prefix: str) -> bool:
    return (
        name.startswith(prefix)
        if prefix.endswith(".")
        else (name == prefix or name.startswith(prefix + "."))
    )


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_against_the_layering(layer):
    found = sorted(
        f"{name} imports {target}"
        for name in MODULES
        if _matches(name, layer)
        for target in imports_of(name)
        if any(_matches(target, bad) for bad in FORBIDDEN[layer])
    )
    assert found == []


def test_resources_other_than_the_database_do_not_persist():
    persisting = sorted(
        f"{name} imports {target}"
        for name in MODULES
        if _matches(name, "lending_pipelines.resources") and name != PERSISTING_RESOURCE
        for target in imports_of(name)
        if _matches(target, "lending_pipelines.db") or _matches(target, "sqlalchemy")
    )
    assert persisting == []
