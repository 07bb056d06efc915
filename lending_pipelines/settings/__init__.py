"""Typed settings read from the environment (pydantic-settings).

Every setting has an environment variable, a documented default and a parser (`values.py`);
a bad value fails at start-up with a `SettingsError` that names the variable and the value.
Secrets are `SecretStr`: never shown in a repr, a log line or an error (`reveal` where used).
The configuration tables (README: what a deployment sets; docs/configuration.md: everything) are
generated from the declarations in `model.py`
(`python -m lending_pipelines.settings.table --write`; a test keeps the two in step).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr

from .model import Settings, extra
from .values import PROJECT_ROOT, SettingsError

__all__ = [
    "PROJECT_ROOT",
    "Settings",
    "SettingsError",
    "documented_settings",
    "get_settings",
    "reveal",
]


def reveal(secret: SecretStr | None) -> str | None:
    """A secret setting's value, where it is used (never to be logged or shown)."""
    return None if secret is None else secret.get_secret_value()


def documented_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) for every setting, in declaration order."""
    return [
        (extra(name)["env"], extra(name)["raw_default"], field.description or "")
        for name, field in Settings.model_fields.items()
    ]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()
