"""WhatsApp messages sent at most once per idempotency key, through the `outbox` table.

Twilio has no idempotency key, so the outbox gives one: a key is claimed before the call and its
outcome recorded after, in two short transactions. A crash in between leaves the key `sending`,
which is never resent automatically (the status sensor or an operator settles it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..db import outbox
from ..partners.twilio import WhatsAppClient, WhatsAppError, whatsapp_address

CHANNEL = "whatsapp"


def send_whatsapp_once(
    client: WhatsAppClient,
    engine: sa.Engine,
    idempotency_key: str,
    to: str,
    *,
    content_sid: str | None = None,
    variables: Mapping[str, str] | None = None,
    body: str | None = None,
) -> outbox.SendOutcome:
    """Send through the outbox: at most one attempt per idempotency key.

    1. one transaction: enqueue the intent (key unique) and claim it (pending → sending);
       an already-claimed key returns its recorded outcome without sending;
    2. call Twilio;
    3. second transaction: record sent / failed / unknown — or back to pending when Twilio
       certainly did not process it (429 exhausted, connection refused), so a later call
       with the same key may try again.
    """
    if (content_sid is None) == (body is None):
        raise ValueError(f"outbox {idempotency_key}: give exactly one of content_sid or body")
    try:
        target, invalid = whatsapp_address(to), None
    except WhatsAppError as exc:  # recorded as a failed intent, not a crash
        target, invalid = to, exc
    payload: dict[str, Any] = (
        {"content_sid": content_sid, "variables": dict(variables or {})}
        if content_sid is not None
        else {"body": body}
    )
    with engine.begin() as conn:
        outbox.enqueue(
            conn,
            idempotency_key=idempotency_key,
            channel=CHANNEL,
            target=target,
            payload=payload,
        )
        claimed = outbox.claim(conn, idempotency_key)
    if claimed is None:
        with engine.connect() as conn:
            return outbox.outcome(conn, idempotency_key, attempted_now=False)
    if invalid is not None:
        with engine.begin() as conn:
            outbox.record_failed(conn, idempotency_key, error=str(invalid))
            return outbox.outcome(conn, idempotency_key, attempted_now=False)
    try:
        if content_sid is not None:
            message = client.send_template(target, content_sid, variables)
        else:
            message = client.send_text(target, body or "")
    except WhatsAppError as exc:
        with engine.begin() as conn:
            if exc.retryable:
                outbox.release(conn, idempotency_key, error=str(exc))
            elif exc.outcome_unknown:
                outbox.record_unknown(conn, idempotency_key, error=str(exc))
            else:
                outbox.record_failed(conn, idempotency_key, error=str(exc))
            return outbox.outcome(conn, idempotency_key, attempted_now=True)
    except BaseException:
        # Anything else after the claim (a bug, an interrupt) is treated as ambiguous.
        with engine.begin() as conn:
            outbox.record_unknown(
                conn, idempotency_key, error="interrupted after claiming; outcome unknown"
            )
        raise
    with engine.begin() as conn:
        outbox.record_sent(conn, idempotency_key, provider_message_id=message.sid)
        return outbox.outcome(conn, idempotency_key, attempted_now=True)
