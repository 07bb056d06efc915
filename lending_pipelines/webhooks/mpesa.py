"""POST /mpesa/{token}/result|timeout: Daraja results, authenticated by the path token (Daraja
does not sign callbacks) and, where configured, by the caller's network."""

from __future__ import annotations

import hashlib
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .config import ReceiverConfig, Store
from .limits import Refused, read_body, refusal
from .networks import allowed
from .signatures import token_matches

log = logging.getLogger(__name__)

MPESA_CALLBACK_KINDS = ("result", "timeout")


def mpesa_event_id(kind: str, body: dict, raw: bytes) -> tuple[str, str]:
    """(event id, event type) of a Daraja callback; falls back to the body's digest."""
    result = body.get("Result") if isinstance(body, dict) else None
    if isinstance(result, dict):
        conversation = result.get("ConversationID") or result.get("OriginatorConversationID")
        if conversation:
            return f"{kind}:{conversation}", f"mpesa.{kind}"
    return f"{kind}:sha256:{hashlib.sha256(raw).hexdigest()}", f"mpesa.{kind}.unrecognised"


def mpesa_route(config: ReceiverConfig, store: Store):
    async def mpesa(request: Request) -> Response:
        may_call, address = allowed(request, config.mpesa_allowed_networks, config.trusted_proxies)
        if not may_call:
            log.warning("mpesa callback refused: caller %s is not in the allowed networks", address)
            return refusal(403, "caller not allowed")
        # Constant-time, over bytes: the token is the only thing authenticating Daraja.
        if not token_matches(request.path_params["token"], config.mpesa_tokens):
            return refusal(404, "not found")
        kind = request.path_params["kind"]
        if kind not in MPESA_CALLBACK_KINDS:
            return refusal(404, "not found")
        try:
            raw = await read_body(
                request, "mpesa", config.max_body_bytes["mpesa"], config.body_timeout_seconds
            )
        except Refused as refused:
            log.warning("mpesa %s callback refused: %s", kind, refused.message)
            return refused.response()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed_body": raw.decode("utf-8", "replace")}
        event_id, event_type = mpesa_event_id(kind, body, raw)
        new = await store("mpesa", event_id, body, event_type)
        log.info("mpesa %s callback %s stored=%s", kind, event_id, new)
        # Daraja expects this acknowledgement shape.
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})

    return mpesa
