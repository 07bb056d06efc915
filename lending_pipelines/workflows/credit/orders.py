"""Order recovery: pending orders expire (every 6 hours), recently expired ones get one
follow-up (14:00), and a failed CREDIT order has its debit reversed once and the retailer told
(a sensor on `orders`). SQL: db/credit/orders.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from ...db.credit.messages import template_payload
from ...db.credit.recovery import (
    claim_follow_ups,
    claim_reversals,
    expire_pending_orders,
    record_follow_ups,
    record_reversals,
)
from ...domain.credit_money import format_amount
from ...partners.twilio import WhatsAppClient
from .messages import Delivery, deliver

FOLLOW_UP = "order_follow_up"
ORDER_FAILED = "order_failed"


def expire_orders(engine: sa.Engine, *, expiry_hours: int) -> list[dict]:
    with engine.begin() as conn:
        return expire_pending_orders(conn, expiry_hours=expiry_hours)


@dataclass
class MessagesReport:
    changed: list[dict] = field(default_factory=list)
    queued: int = 0
    delivery: Delivery = field(default_factory=Delivery)


def send_follow_ups(
    engine: sa.Engine, client: WhatsAppClient, *, lookback_hours: int, content_sid: str
) -> MessagesReport:
    report = MessagesReport()
    with engine.begin() as conn:
        due = claim_follow_ups(conn, lookback_hours=lookback_hours)
        report.queued = record_follow_ups(
            conn,
            [
                {
                    "entity_id": str(f.pending_order_id),
                    "key": f"{FOLLOW_UP}:{f.pending_order_id}",
                    "number": f.whatsapp_number,
                    "payload": template_payload(
                        content_sid,
                        f.retailer_name,
                        format_amount(f.amount, f.currency),
                        f.pending_order_id,
                    ),
                }
                for f in due
            ],
        )
    report.changed = [
        {"pending_order_id": f.pending_order_id, "amount": format_amount(f.amount, f.currency)}
        for f in due
    ]
    report.delivery = deliver(engine, client, FOLLOW_UP)
    return report


def reverse_failed_orders(
    engine: sa.Engine, client: WhatsAppClient, *, actor: str, run_id: str | None, content_sid: str
) -> MessagesReport:
    report = MessagesReport()
    with engine.begin() as conn:
        todo = claim_reversals(conn)
        reversed_count, report.queued = record_reversals(
            conn,
            [
                {
                    "entity_id": str(r.debit_id),
                    "key": f"{ORDER_FAILED}:{r.order_id}",
                    "number": r.whatsapp_number,
                    "payload": template_payload(
                        content_sid,
                        r.retailer_name,
                        r.order_id,
                        format_amount(r.amount, r.currency),
                    ),
                }
                for r in todo
            ],
            actor=actor,
            run_id=run_id,
        )
    report.changed = [
        {
            "debit_id": r.debit_id,
            "order_id": r.order_id,
            "retailer_id": r.retailer_id,
            "amount": format_amount(r.amount, r.currency),
            "refund_due": format_amount(r.cleared_amount, r.currency),
        }
        for r in todo[:reversed_count]
    ]
    report.delivery = deliver(engine, client, ORDER_FAILED)
    return report
