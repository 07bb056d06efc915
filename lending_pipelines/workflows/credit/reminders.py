"""Payment reminders (10:00): one WhatsApp template per debit due within the window or overdue,
at most one per debit per local day (rule: domain/credit_reminders.py; SQL:
db/credit/reminders.py). Sent only on the business day itself: re-running a past day reminds
nobody."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from ...db.credit.messages import template_payload
from ...db.credit.reminders import claim_due_reminders, record_reminders
from ...domain.credit_money import format_amount
from ...partners.twilio import WhatsAppClient
from .messages import Delivery, deliver

KIND = "payment_reminder"


@dataclass
class ReminderReport:
    business_date: date
    reminded: list[dict] = field(default_factory=list)
    queued: int = 0
    delivery: Delivery = field(default_factory=Delivery)


def send_reminders(
    engine: sa.Engine,
    client: WhatsAppClient,
    *,
    business_date: date,
    tz: str,
    window_days: int,
    content_sid: str,
) -> ReminderReport:
    report = ReminderReport(business_date)
    with engine.begin() as conn:
        due = claim_due_reminders(conn, business_date=business_date, tz=tz, window_days=window_days)
        intents = [
            {
                "entity_id": str(d.transaction_id),
                "key": f"{KIND}:{d.transaction_id}:{business_date.isoformat()}",
                "number": d.whatsapp_number,
                "payload": template_payload(
                    content_sid,
                    d.retailer_name,
                    format_amount(d.owed, d.currency),
                    d.due_date.isoformat(),
                    d.transaction_id,
                ),
            }
            for d in due
        ]
        reminded, report.queued = record_reminders(
            conn, intents, business_date=business_date, tz=tz
        )
    # The rows are locked since the claim, so every claimed debit was reminded now.
    report.reminded = [
        {
            "transaction_id": d.transaction_id,
            "owed": format_amount(d.owed, d.currency),
            "due_date": d.due_date.isoformat(),
        }
        for d in due[:reminded]
    ]
    report.delivery = deliver(engine, client, KIND)
    return report
