"""The dev environment: per-checkout generated secrets and the sandbox's credentials, filled
into whatever the environment leaves unset (`lending dev`, `lending seed`, plain `dagster dev`
from the repository)."""

from __future__ import annotations

import json
import os
import secrets

from lending_pipelines.settings import Settings, get_settings

from .demo import DEV_AUTH_TOKEN as TWILIO_SANDBOX_AUTH_TOKEN

# Credentials the resources read from the environment, pointed at the sandbox in dev mode.
# Real deployments set real values; these only apply when the variable is unset.
DEV_ENVIRONMENT: dict[str, str] = {
    "LENDING_STRIPE_API_KEY": "sk_test_lending_dev_sandbox",
    "LENDING_TWILIO_AUTH_TOKEN": TWILIO_SANDBOX_AUTH_TOKEN,
}


def dev_secrets(settings: Settings) -> dict[str, str]:
    """Per-checkout secrets for local dev, generated once under LENDING_HOME (git-ignored)."""
    from cryptography.fernet import Fernet

    path = settings.home / "dev-secrets.json"
    secrets_ = json.loads(path.read_text()) if path.exists() else {}
    generated = {
        "LENDING_ENCRYPTION_KEY": lambda: Fernet.generate_key().decode(),
        "LENDING_MPESA_CALLBACK_TOKEN": lambda: secrets.token_urlsafe(24),
        "LENDING_STRIPE_WEBHOOK_SECRET": lambda: "whsec_" + secrets.token_hex(24),
    }
    if set(generated) - set(secrets_):
        for name, make in generated.items():
            secrets_.setdefault(name, make())
        settings.home.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(secrets_, indent=2))
        path.chmod(0o600)
    return secrets_


def fill_dev_secrets() -> dict[str, str]:
    """The dev secrets and sandbox credentials fill in whatever the environment leaves unset
    (this process and its children)."""
    for name, value in {**dev_secrets(Settings.from_env()), **DEV_ENVIRONMENT}.items():
        if not os.environ.get(name):
            os.environ[name] = value
    get_settings.cache_clear()
    return dict(os.environ)


def enter_dev_mode() -> dict[str, str]:
    """Turn dev mode on for this process and its children, with the dev secrets."""
    os.environ["LENDING_DEV_MODE"] = "true"
    return fill_dev_secrets()
