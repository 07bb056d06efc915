"""The callback receiver (Starlette). Stores each event once, then answers.

    POST /mpesa/{token}/result     Daraja B2C / transaction-status results
    POST /mpesa/{token}/timeout    Daraja QueueTimeOutURL notifications
    POST /stripe/events            Stripe webhooks, verified with Stripe-Signature
    POST /twilio/status            Twilio message status callbacks (form)
    GET  /health

An event is committed to `inbound_events` before the 2xx goes out, so an acknowledged event is
never lost; a redelivery hits the (provider, event_id) unique key and is acknowledged again
without a second row. Daraja does not sign callbacks, so its URLs carry an unguessable token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import sqlalchemy as sa
import stripe
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..db.engine import get_engine
from ..db.inbound import store_event
from ..db.server import operational_url
from ..settings import Settings, get_settings

log = logging.getLogger(__name__)

STRIPE_SIGNATURE_TOLERANCE_SECONDS = 300
MPESA_CALLBACK_KINDS = ("result", "timeout")


class ReceiverConfigError(RuntimeError):
    """The receiver cannot start safely (e.g. no M-Pesa path token)."""


def mpesa_callback_url(settings: Settings, kind: str = "result") -> str:
    """The ResultURL / QueueTimeOutURL to give Daraja."""
    if not settings.mpesa_callback_token:
        raise ReceiverConfigError("LENDING_MPESA_CALLBACK_TOKEN is not set")
    return f"{settings.webhooks_url}/mpesa/{settings.mpesa_callback_token}/{kind}"


def mpesa_event_id(kind: str, body: dict, raw: bytes) -> tuple[str, str]:
    """(event id, event type) of a Daraja callback; falls back to the body's digest."""
    result = body.get("Result") if isinstance(body, dict) else None
    if isinstance(result, dict):
        conversation = result.get("ConversationID") or result.get("OriginatorConversationID")
        if conversation:
            return f"{kind}:{conversation}", f"mpesa.{kind}"
    return f"{kind}:sha256:{hashlib.sha256(raw).hexdigest()}", f"mpesa.{kind}.unrecognised"


def build_app(
    database_url: str | None = None,
    mpesa_token: str | None = None,
    stripe_webhook_secret: str | None = None,
) -> Starlette:
    settings = get_settings()
    token = mpesa_token if mpesa_token is not None else settings.mpesa_callback_token
    if not token:
        raise ReceiverConfigError(
            "LENDING_MPESA_CALLBACK_TOKEN is not set: the M-Pesa callback path needs a secret token"
        )
    secret = (
        stripe_webhook_secret
        if stripe_webhook_secret is not None
        else settings.stripe_webhook_secret
    )
    url = database_url or operational_url(settings)

    def engine() -> sa.Engine:
        return get_engine(url, settings.statement_timeout_ms)

    def store_sync(provider: str, event_id: str, payload, event_type: str | None) -> bool:
        with engine().begin() as conn:
            return store_event(conn, provider, event_id, payload, event_type)

    async def store(provider: str, event_id: str, payload, event_type: str | None) -> bool:
        return await run_in_threadpool(store_sync, provider, event_id, payload, event_type)

    async def mpesa(request: Request) -> Response:
        # Constant-time comparison: the token is the only thing authenticating Daraja.
        if not hmac.compare_digest(request.path_params["token"], token):
            return JSONResponse({"error": "not found"}, status_code=404)
        kind = request.path_params["kind"]
        if kind not in MPESA_CALLBACK_KINDS:
            return JSONResponse({"error": "not found"}, status_code=404)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed_body": raw.decode("utf-8", "replace")}
        event_id, event_type = mpesa_event_id(kind, body, raw)
        new = await store("mpesa", event_id, body, event_type)
        log.info("mpesa %s callback %s stored=%s", kind, event_id, new)
        # Daraja expects this acknowledgement shape.
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})

    async def stripe_events(request: Request) -> Response:
        if not secret:
            return JSONResponse({"error": "Stripe webhooks are not configured"}, status_code=400)
        raw = await request.body()
        signature = request.headers.get("stripe-signature", "")
        try:
            stripe.WebhookSignature.verify_header(
                raw.decode("utf-8"), signature, secret, STRIPE_SIGNATURE_TOLERANCE_SECONDS
            )
            event = json.loads(raw)
            event_id, event_type = event["id"], event.get("type")
        except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError):
            log.warning("stripe event refused: bad signature or body")
            return JSONResponse({"error": "invalid signature"}, status_code=400)
        new = await store("stripe", event_id, event, event_type)
        return JSONResponse({"received": True, "duplicate": not new})

    async def twilio_status(request: Request) -> Response:
        form = dict(await request.form())
        sid, status = form.get("MessageSid"), form.get("MessageStatus")
        if not sid or not status:
            return JSONResponse({"error": "MessageSid and MessageStatus required"}, status_code=400)
        await store("twilio", f"{sid}:{status}", form, f"twilio.message.{status}")
        return Response(status_code=204)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/mpesa/{token}/{kind:str}", mpesa, methods=["POST"]),
            Route("/stripe/events", stripe_events, methods=["POST"]),
            Route("/twilio/status", twilio_status, methods=["POST"]),
        ]
    )
