from decimal import Decimal
from pathlib import Path

import pytest

from lending_pipelines.settings import PROJECT_ROOT, Settings, SettingsError, documented_settings
from lending_pipelines.settings.table import REFERENCE, generated


def test_defaults_follow_the_spec():
    s = Settings.from_env({})
    assert s.database_url is None
    assert s.home == PROJECT_ROOT / ".lending"
    assert (s.credit_timezone, s.escrow_timezone, s.payouts_timezone) == (
        "Asia/Kolkata",
        "Africa/Nairobi",
        "UTC",
    )
    assert s.token_rate == Decimal("0.05")
    assert s.payout_hold_days == 7
    assert s.auto_deduct_percent == Decimal("30")
    assert s.min_wallet_balance_minor == 10_000
    assert s.poll_error_rate_fail == Decimal("0.10")
    assert s.disbursement_success_rate_min == Decimal("0.90")
    assert all((s.cron_enabled, s.escalation_enabled, s.scoring_enabled, s.reminders_enabled))


def test_environment_overrides_defaults():
    s = Settings.from_env(
        {"CRON_ENABLED": "false", "LENDING_TOKEN_RATE": "0.10", "LENDING_HOME": "/tmp/x"}
    )
    assert s.cron_enabled is False
    assert s.token_rate == Decimal("0.10")
    assert s.home == Path("/tmp/x")


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("LENDING_LOANS_TIMEZONE", "Mars/Olympus_Mons"),
        ("LENDING_COLLECTIONS_TIMEZONE", "not a zone"),
        ("LENDING_POLL_ERROR_RATE_FAIL", "-0.1"),
        ("LENDING_POLL_SUCCESS_RATE_WARN", "1.5"),
        ("LENDING_PAYOUT_HOLD_DAYS", "-3"),
        ("LENDING_POLL_CONCURRENCY", "0"),
        ("LENDING_TOKEN_RATE", "abc"),
        ("LENDING_TOKEN_RATE", "0"),
        ("LENDING_AUTO_DEDUCT_PERCENT", "130"),
        ("CRON_ENABLED", "maybe"),
        ("LENDING_PAYOUT_CURRENCY", "DOLLARS"),
        ("LENDING_SANDBOX_URL", "localhost:8700"),
    ],
)
def test_a_bad_value_fails_fast_naming_the_variable_and_value(env, value):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({env: value})
    assert env in str(error.value)
    assert repr(value) in str(error.value)


def test_the_configuration_reference_documents_every_setting():
    reference = REFERENCE.read_text()
    missing = [env for env, _, _ in documented_settings() if f"`{env}`" not in reference]
    assert missing == []


def test_the_configuration_tables_are_the_ones_generated_from_the_settings():
    stale = [path.name for path, text in generated().items() if path.read_text() != text]
    assert stale == [], "run `make settings-table`"


def test_the_readme_lists_what_a_deployment_must_set_and_no_dev_only_setting():
    readme = (PROJECT_ROOT / "README.md").read_text()
    for env in ("LENDING_DATABASE_URL", "LENDING_ENCRYPTION_KEY", "LENDING_WEBHOOKS_URL"):
        assert f"| `{env}` |" in readme
    assert "| `LENDING_DEV_MODE` |" not in readme and "| `LENDING_SANDBOX_URL` |" not in readme


def test_printing_settings_never_shows_a_secret():
    secrets = {
        "LENDING_DATABASE_URL": "postgresql+psycopg://app:db-pass-91@db/lending",
        "LENDING_ENCRYPTION_KEY": "fernet-key-value-xyz",
        "LENDING_MPESA_CALLBACK_TOKEN": "callback-token-abc",
        "LENDING_STRIPE_WEBHOOK_SECRET": "whsec_secret_def",
        "LENDING_ALERT_WEBHOOK_URL": "https://hooks.example.test/T000/secret-path",
    }
    settings = Settings.from_env(secrets)
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert [value for value in secrets.values() if value in shown] == []
