"""The loans knobs reach the assets, checks and ops through the `loans_config` resource (filled
from the LENDING_* variables by build_resources), and the engines get plain values."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from lending_pipelines.resource_defs import build_resources
from lending_pipelines.resources.loans_config import LoansConfig
from lending_pipelines.settings import get_settings

PACKAGE = Path(__file__).resolve().parents[2] / "lending_pipelines"


@pytest.fixture
def loans_variables(monkeypatch):
    for key, value in {
        "LENDING_POLL_CONCURRENCY": "3",
        "LENDING_POLL_TIMEOUT_SECONDS": "12",
        "LENDING_POLL_ERROR_RATE_FAIL": "0.25",
        "LENDING_NO_NEW_LOAN_HOURS": "6",
        "LENDING_DISBURSEMENT_MAX_ATTEMPTS": "7",
        "LENDING_DISBURSEMENT_NOT_FOUND_GAP_MINUTES": "45",
        "LENDING_LOANS_TIMEZONE": "Africa/Kampala",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_loans_config_resource_is_filled_from_the_lending_variables(loans_variables):
    config = build_resources(get_settings())["loans_config"]
    assert isinstance(config, LoansConfig)
    assert (config.poll_concurrency, config.poll_timeout_seconds) == (3, 12)
    assert str(config.rate("poll_error_rate_fail")) == "0.25"
    assert config.no_new_loan_hours == 6
    assert config.disbursement_max_attempts == 7
    assert config.disbursement_not_found_gap_minutes == 45
    assert config.timezone == "Africa/Kampala"


@pytest.mark.parametrize(
    ("field", "value"),
    [("poll_error_rate_fail", "1.5"), ("disbursement_success_rate_min", "ninety"),
     ("timezone", "Mars/Olympus")],
)  # fmt: skip
def test_a_loans_config_value_out_of_range_is_refused_naming_field_and_value(field, value):
    values = LoansConfig.from_settings(get_settings()).model_dump()
    with pytest.raises(ValidationError, match=f"{field} is '{value}'"):
        LoansConfig(**{**values, field: value})


def test_every_loans_asset_check_and_op_that_reads_a_knob_requires_loans_config():
    from lending_pipelines.assets.loans import assets, checks, ops

    definitions = [
        assets.loan_tracking,
        assets.loan_disbursements,
        *checks.LOANS_ASSET_CHECKS,
        ops.apply_mpesa_results,
        ops.retry_disbursements,
    ]
    missing = [d.key if hasattr(d, "key") else d.name for d in definitions
               if "loans_config" not in d.required_resource_keys]  # fmt: skip
    assert not missing


@pytest.mark.parametrize("part", ["assets/loans", "workflows/loans"])
def test_loans_knobs_are_not_read_from_the_environment_inside_assets_or_engines(part):
    """Only the encryption key, the alert reminder interval and the schedules' timezone are
    still read with get_settings() (none of them a loans knob)."""
    knobs = {name for name in LoansConfig.model_fields if name != "timezone"} | {"loans_timezone"}
    found = [
        f"{path.relative_to(PACKAGE)}: settings.{node.attr}"
        for path in sorted((PACKAGE / part).rglob("*.py"))
        if path.name != "rules.py"  # DisbursementRules.from_settings, for scripts and tests
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in knobs
        and isinstance(node.value, (ast.Name, ast.Call))
        and "settings" in ast.unparse(node.value)
    ]  # fmt: skip
    assert not found or found == ["assets/loans/common.py: settings.loans_timezone"], found
