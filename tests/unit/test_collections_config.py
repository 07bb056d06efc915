"""The collections knobs: defaults, LENDING_* overrides, and a bad value naming its variable."""

from pathlib import Path

import pytest

from lending_pipelines.resources.collections_config import CollectionsConfig
from lending_pipelines.settings import Settings, SettingsError


def test_defaults_put_the_inbox_under_lending_home_with_the_rbi_hours_and_one_crore():
    settings = Settings.from_env({"LENDING_HOME": "/srv/lending"})
    config = CollectionsConfig.from_env(settings, environ={})
    assert config.inbox == Path("/srv/lending/inbox/payments")
    assert (config.reminder_start_hour, config.reminder_end_hour) == (8, 19)
    assert (config.bounds.min_amount_minor, config.bounds.max_amount_minor) == (100, 1_00_00_000_00)
    assert config.bounds.backdating_days == 7


def test_environment_overrides_each_knob():
    config = CollectionsConfig.from_env(
        Settings.from_env({}),
        environ={"LENDING_PAYMENT_INBOX": "/data/in", "LENDING_PAYMENT_BACKDATING_DAYS": "3",
                 "LENDING_REMINDER_TEMPLATE_90_PLUS": "HX" + "ab" * 16},
    )  # fmt: skip
    assert (config.inbox_path, config.backdating_days) == ("/data/in", 3)
    assert config.reminder_templates["90+"] == "HX" + "ab" * 16


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LENDING_PAYMENT_BACKDATING_DAYS", "seven"),
        ("LENDING_PAYMENT_MIN_MINOR", "0"),
        ("LENDING_REMINDER_END_HOUR", "7"),
        ("LENDING_REMINDER_TEMPLATE_1_30", "not-a-sid"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable_and_value(variable, value):
    with pytest.raises(SettingsError) as error:
        CollectionsConfig.from_env(Settings.from_env({}), environ={variable: value})
    assert variable in str(error.value) and repr(value) in str(error.value)
