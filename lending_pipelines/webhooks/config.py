"""What the receiver needs to know, checked once at start-up."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .limits import DEFAULT_MAX_BODY_BYTES
from .networks import Network, parse_networks

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 24
TOKEN_ENV = "LENDING_MPESA_CALLBACK_TOKEN"
PREVIOUS_TOKEN_ENV = "LENDING_MPESA_CALLBACK_TOKEN_PREVIOUS"
TWILIO_AUTH_TOKEN_ENV = "LENDING_TWILIO_AUTH_TOKEN"

# store(provider, event id, payload, event type) -> True when new, False for a redelivery.
Store = Callable[[str, str, Any, str | None], Awaitable[bool]]


class ReceiverConfigError(RuntimeError):
    """The receiver cannot start safely (e.g. no M-Pesa path token)."""


@dataclass(frozen=True)
class ReceiverConfig:
    mpesa_tokens: tuple[bytes, ...]
    stripe_secrets: tuple[str, ...]
    twilio_auth_token: str | None
    public_url: str
    mpesa_allowed_networks: tuple[Network, ...]
    trusted_proxies: tuple[Network, ...]
    body_timeout_seconds: float
    max_body_bytes: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_BODY_BYTES))

    @classmethod
    def build(
        cls,
        *,
        mpesa_token: str | None,
        previous_mpesa_token: str | None,
        stripe_secrets: Iterable[str | None],
        twilio_auth_token: str | None,
        public_url: str,
        mpesa_allowed_networks: Iterable,
        trusted_proxies: Iterable,
        body_timeout_seconds: float,
        max_body_bytes: Mapping[str, int] | None = None,
    ) -> ReceiverConfig:
        if not mpesa_token:
            raise ReceiverConfigError(
                f"{TOKEN_ENV} is not set: the M-Pesa callback path needs a secret token"
            )
        tokens = []
        for env, token in ((TOKEN_ENV, mpesa_token), (PREVIOUS_TOKEN_ENV, previous_mpesa_token)):
            if not token:
                continue
            if len(token) < MIN_TOKEN_LENGTH:
                # Name the variable and the length, never the value.
                raise ReceiverConfigError(
                    f"{env} is {len(token)} characters; it must be at least "
                    f"{MIN_TOKEN_LENGTH} characters of random text (it is the only thing "
                    "authenticating Daraja's callbacks)"
                )
            tokens.append(token.encode("utf-8"))
        if not twilio_auth_token:
            log.warning(
                "%s is not set: Twilio status callbacks will be refused", TWILIO_AUTH_TOKEN_ENV
            )
        return cls(
            mpesa_tokens=tuple(tokens),
            stripe_secrets=tuple(s for s in stripe_secrets if s),
            twilio_auth_token=twilio_auth_token or None,
            public_url=public_url.rstrip("/"),
            mpesa_allowed_networks=parse_networks(mpesa_allowed_networks),
            trusted_proxies=parse_networks(trusted_proxies),
            body_timeout_seconds=body_timeout_seconds,
            max_body_bytes={**DEFAULT_MAX_BODY_BYTES, **(max_body_bytes or {})},
        )
