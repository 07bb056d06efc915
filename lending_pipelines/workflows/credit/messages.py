"""Delivering the credit workflow's WhatsApp intents from the outbox.

The statements that change credit rows also write their outbox rows (db/credit/*, same
transaction). Delivery then sends every still-`pending` row of a kind through
`send_whatsapp_once` (workflows/messaging.py), which claims the key (pending → sending) before
calling Twilio: two runs delivering at once never send one key twice, and a row left `pending`
by a crash between the commit and the send goes out at the next run of its job. Rows already
attempted (`sent`/`failed`/`unknown`) are never resent here."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from ...db.common import outbox
from ...partners.twilio import WhatsAppClient
from ..messaging import send_whatsapp_once


@dataclass
class Delivery:
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # key → error
    skipped: list[str] = field(default_factory=list)  # claimed by another run meanwhile

    def as_metadata(self) -> dict:
        return {
            "messages_sent": len(self.sent),
            "messages_failed": len(self.failed),
            "messages_skipped": len(self.skipped),
        }


def pending_intents(engine: sa.Engine, kind: str) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(outbox.c.idempotency_key, outbox.c.target, outbox.c.payload)
                .where(
                    outbox.c.status == "pending",
                    outbox.c.idempotency_key.startswith(f"{kind}:", autoescape=True),
                )
                .order_by(outbox.c.id)
            )
        )


def deliver(engine: sa.Engine, client: WhatsAppClient, kind: str) -> Delivery:
    """Send the pending intents of one message kind (an API-call loop, one call per intent)."""
    delivery = Delivery()
    for key, target, payload in pending_intents(engine, kind):
        outcome = send_whatsapp_once(
            client,
            engine,
            key,
            target,
            content_sid=payload["content_sid"],
            variables=payload["variables"],
        )
        if not outcome.attempted_now:
            delivery.skipped.append(key)
        elif outcome.sent:
            delivery.sent.append(key)
        else:
            delivery.failed[key] = outcome.error or outcome.status
    return delivery
