"""POST /stripe/events: Stripe webhooks, verified with Stripe-Signature against the endpoint
secret (or the one being rolled out) before anything is stored."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .config import ReceiverConfig, Store
from .limits import Refused, check_declared_length, read_body, refusal
from .signatures import stripe_payload_valid, stripe_signature_header_usable

log = logging.getLogger(__name__)


def stripe_route(config: ReceiverConfig, store: Store):
    async def stripe_events(request: Request) -> Response:
        if not config.stripe_secrets:
            return refusal(400, "Stripe webhooks are not configured")
        signature = request.headers.get("stripe-signature", "")
        try:
            check_declared_length(request, "stripe", config.max_body_bytes["stripe"])
            # Nothing unsigned is read: a body without a usable signature header is refused
            # before its first byte.
            if not stripe_signature_header_usable(signature):
                raise Refused(400, "invalid signature")
            raw = await read_body(
                request, "stripe", config.max_body_bytes["stripe"], config.body_timeout_seconds
            )
            payload = raw.decode("utf-8")
            if not stripe_payload_valid(payload, signature, config.stripe_secrets):
                raise Refused(400, "invalid signature")
            event = json.loads(payload)
            event_id, event_type = event["id"], event.get("type")
            if not isinstance(event_id, str):
                raise Refused(400, "event id is not a string")
        except Refused as refused:
            log.warning("stripe event refused: %s", refused.message)
            return refused.response()
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            log.warning("stripe event refused: signed body is not a Stripe event")
            return refusal(400, "invalid event body")
        new = await store("stripe", event_id, event, event_type)
        return JSONResponse({"received": True, "duplicate": not new})

    return stripe_events
