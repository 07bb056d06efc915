"""A DeprecationWarning raised from our own code (lending_pipelines, lending_dev) fails the
test that triggers it; third-party deprecations stay ignored."""

from __future__ import annotations

import warnings

import pytest


def _warn_from(module: str) -> None:
    warnings.warn_explicit(
        "this call is deprecated", DeprecationWarning, f"{module.replace('.', '/')}.py", 1, module
    )


@pytest.mark.parametrize(
    "module", ["lending_pipelines.definitions", "lending_pipelines", "lending_dev.supervisor"]
)
def test_a_deprecation_warning_from_our_own_code_is_an_error(module):
    with pytest.raises(DeprecationWarning, match="this call is deprecated"):
        _warn_from(module)


@pytest.mark.parametrize("module", ["sqlalchemy.engine", "dagster._core.definitions", "dbt"])
def test_a_deprecation_warning_from_a_library_is_ignored(module):
    _warn_from(module)
