"""How a raw environment value becomes a setting: one parser per kind of value.

Each parser takes the raw string and raises `ValueError("expected ...")`; the settings model
turns that into a `SettingsError` naming the variable and the value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import NoDecode

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class SettingsError(ValueError):
    """A configuration value that cannot be used."""


def setting(
    env: str, default: str, doc: str, secret: bool = False, production: bool = False
) -> Any:
    """Declare a setting: its environment variable, default (as the raw string, parsed like a
    value from the environment) and meaning; `production`: a deployment must set it (its
    default is the local sandbox's, or nothing)."""
    return Field(
        default=default,
        validation_alias=env,
        description=doc,
        json_schema_extra={
            "env": env,
            "raw_default": default,
            "secret": secret,
            "production": production,
        },
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected text, not {type(raw).__name__}")
    return raw.strip()


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = _text(raw).lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def at_least(minimum: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        else:
            try:
                value = int(_text(raw))
            except ValueError:
                raise ValueError(f"expected an integer >= {minimum}") from None
        if value < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        return value

    return parse


def decimal_in(minimum: Decimal, maximum: Decimal | None = None) -> Callable[[Any], Decimal]:
    """A decimal in [minimum, maximum], or above `minimum` (exclusive) without a maximum."""
    expected = (
        f"expected a decimal in [{minimum}, {maximum}]"
        if maximum
        else (f"expected a decimal > {minimum}")
    )

    def parse(raw: Any) -> Decimal:
        try:
            value = raw if isinstance(raw, Decimal) else Decimal(_text(raw))
        except InvalidOperation:
            raise ValueError(expected) from None
        if not value.is_finite() or value < minimum or (maximum is not None and value > maximum):
            raise ValueError(expected)
        if maximum is None and value == minimum:
            raise ValueError(expected)
        return value

    return parse


def parse_timezone(raw: Any) -> str:
    value = _text(raw)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA timezone such as 'Africa/Nairobi'") from None
    return value


def parse_currency(raw: Any) -> str:
    value = _text(raw).upper()
    if len(value) != 3 or not value.isalpha():
        raise ValueError("expected a three-letter ISO 4217 currency code")
    return value


def parse_optional_text(raw: Any) -> str | None:
    if raw is None or isinstance(raw, SecretStr):
        return raw
    return _text(raw) or None


def parse_url(raw: Any) -> str:
    value = _text(raw).rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http(s) URL")
    return value


def parse_optional_url(raw: Any) -> str | None:
    return parse_url(raw) if raw is not None and _text(raw) else None


def parse_path(raw: Any) -> Path:
    path = Path(_text(raw) if isinstance(raw, str) else raw).expanduser()
    return (path if path.is_absolute() else PROJECT_ROOT / path).resolve()


def parse_networks(raw: Any) -> tuple[Network, ...]:
    """A comma-separated list of CIDRs (a bare address is a /32 or /128); empty: none."""
    if isinstance(raw, tuple):
        return raw
    networks = []
    for item in (part.strip() for part in _text(raw).split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"expected comma-separated CIDRs such as '196.201.214.0/24' (not {item!r})"
            ) from None
    return tuple(networks)


Flag = Annotated[bool, BeforeValidator(parse_bool)]
Timezone = Annotated[str, BeforeValidator(parse_timezone)]
Currency = Annotated[str, BeforeValidator(parse_currency)]
Text = Annotated[str, BeforeValidator(_text)]
Url = Annotated[str, BeforeValidator(parse_url)]
OptionalUrl = Annotated[str | None, BeforeValidator(parse_optional_url)]
OptionalText = Annotated[str | None, BeforeValidator(parse_optional_text)]
Secret = Annotated[SecretStr | None, BeforeValidator(parse_optional_text)]
LocalPath = Annotated[Path, BeforeValidator(parse_path)]
Networks = Annotated[tuple[Network, ...], NoDecode, BeforeValidator(parse_networks)]
Rate = Annotated[Decimal, BeforeValidator(decimal_in(Decimal(0), Decimal(1)))]
AtLeast0 = Annotated[int, BeforeValidator(at_least(0))]
AtLeast1 = Annotated[int, BeforeValidator(at_least(1))]
AtLeast30 = Annotated[int, BeforeValidator(at_least(30))]
PositiveDecimal = Annotated[Decimal, BeforeValidator(decimal_in(Decimal(0)))]
Percent = Annotated[Decimal, BeforeValidator(decimal_in(Decimal(0), Decimal(100)))]
