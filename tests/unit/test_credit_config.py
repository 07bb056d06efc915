"""The credit workflow's knobs: LENDING_CREDIT_* variables, documented, refused when bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from lending_pipelines.resources.credit_config import ENVIRONMENT, TEMPLATE_VARIABLES, CreditConfig

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()


def test_every_credit_variable_and_template_is_documented():
    assert [env for env in ENVIRONMENT if f"`{env}`" not in REFERENCE] == []
    assert [kind for kind in TEMPLATE_VARIABLES if f"`{kind}`" not in README] == []


def test_variables_set_the_knobs():
    config = CreditConfig.from_env(
        {
            "LENDING_CREDIT_AGING_BOUNDS": "15,45",
            "LENDING_CREDIT_REMINDER_WINDOW_DAYS": "5",
            "LENDING_CREDIT_TEMPLATE_ORDER_FAILED": "HX" + "ab" * 16,
        }
    )
    assert config.bounds == (15, 45)
    assert config.reminder_window_days == 5
    assert config.template("order_failed") == "HX" + "ab" * 16


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("LENDING_CREDIT_AGING_BOUNDS", "60,30"),
        ("LENDING_CREDIT_REMINDER_WINDOW_DAYS", "-1"),
        ("LENDING_CREDIT_PENDING_ORDER_EXPIRY_HOURS", "soon"),
        ("LENDING_CREDIT_TEMPLATE_CREDIT_PAUSED", "Your credit is paused"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_the_value(env, value):
    with pytest.raises(ValueError) as error:
        CreditConfig.from_env({env: value})
    assert env in str(error.value) and repr(value) in str(error.value)
