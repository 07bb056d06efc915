"""The callback receiver (Starlette). Stores each authenticated event once, then answers.

    POST /mpesa/{token}/result     Daraja B2C / transaction-status results     (mpesa.py)
    POST /mpesa/{token}/timeout    Daraja QueueTimeOutURL notifications
    POST /stripe/events            Stripe webhooks, Stripe-Signature (stripe_events.py)
    POST /twilio/status            Twilio status callbacks, X-Twilio-Signature (twilio_status.py)
    GET  /health

An event is committed to `inbound_events` before the 2xx goes out, so an acknowledged event is
never lost; a redelivery hits the (provider, event_id) unique key and is acknowledged again
without a second row. Daraja does not sign callbacks, so its URLs carry an unguessable token
(two during a rotation) and may be limited to Safaricom's networks. Bodies are capped per
provider and must arrive in time (limits.py); serve.py adds the server-level limits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..db.engine import get_engine
from ..db.inbound import store_event
from ..db.server import operational_url
from ..settings import get_settings, reveal
from .access_log import RedactedAccessLog
from .config import TWILIO_AUTH_TOKEN_ENV, ReceiverConfig, ReceiverConfigError
from .limits import CloseAfterRefusal
from .mpesa import MPESA_CALLBACK_KINDS, mpesa_event_id, mpesa_route
from .signatures import STRIPE_SIGNATURE_TOLERANCE_SECONDS
from .stripe_events import stripe_route
from .twilio_status import twilio_route
from .urls import mpesa_callback_url

__all__ = [
    "MPESA_CALLBACK_KINDS",
    "STRIPE_SIGNATURE_TOLERANCE_SECONDS",
    "ReceiverConfigError",
    "build_app",
    "mpesa_callback_url",
    "mpesa_event_id",
]

log = logging.getLogger(__name__)


def _given(value, default):
    return value if value is not None else default


def build_app(
    database_url: str | None = None,
    mpesa_token: str | None = None,
    stripe_webhook_secret: str | None = None,
    *,
    previous_mpesa_token: str | None = None,
    previous_stripe_webhook_secret: str | None = None,
    twilio_auth_token: str | None = None,
    public_url: str | None = None,
    mpesa_allowed_networks: Iterable | None = None,
    trusted_proxies: Iterable | None = None,
    body_timeout_seconds: float | None = None,
) -> Starlette:
    """The receiver app; each argument left None comes from the settings (the Twilio auth token
    from LENDING_TWILIO_AUTH_TOKEN)."""
    settings = get_settings()
    config = ReceiverConfig.build(
        mpesa_token=_given(mpesa_token, reveal(settings.mpesa_callback_token)),
        previous_mpesa_token=_given(
            previous_mpesa_token, reveal(settings.mpesa_callback_token_previous)
        ),
        stripe_secrets=(
            _given(stripe_webhook_secret, reveal(settings.stripe_webhook_secret)),
            _given(previous_stripe_webhook_secret, reveal(settings.stripe_webhook_secret_previous)),
        ),
        twilio_auth_token=_given(twilio_auth_token, os.environ.get(TWILIO_AUTH_TOKEN_ENV)),
        public_url=_given(public_url, settings.webhooks_url),
        mpesa_allowed_networks=_given(mpesa_allowed_networks, settings.mpesa_allowed_networks),
        trusted_proxies=_given(trusted_proxies, settings.webhooks_trusted_proxies),
        body_timeout_seconds=_given(
            body_timeout_seconds, settings.webhooks_request_timeout_seconds
        ),
        max_body_bytes={
            "mpesa": settings.webhooks_max_body_bytes_mpesa,
            "stripe": settings.webhooks_max_body_bytes_stripe,
            "twilio": settings.webhooks_max_body_bytes_twilio,
        },
    )
    url = database_url or operational_url(settings)

    def engine() -> sa.Engine:
        return get_engine(url, settings.statement_timeout_ms)

    def store_sync(provider: str, event_id: str, payload, event_type: str | None) -> bool:
        with engine().begin() as conn:
            return store_event(conn, provider, event_id, payload, event_type)

    async def store(provider: str, event_id: str, payload, event_type: str | None) -> bool:
        return await run_in_threadpool(store_sync, provider, event_id, payload, event_type)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/mpesa/{token}/{kind:str}", mpesa_route(config, store), methods=["POST"]),
            Route("/stripe/events", stripe_route(config, store), methods=["POST"]),
            Route("/twilio/status", twilio_route(config, store), methods=["POST"]),
        ],
        middleware=[Middleware(RedactedAccessLog), Middleware(CloseAfterRefusal)],
    )
