"""Guardrails evaluation (04:00) and auto-pause (11:00): pause every ACTIVE retailer whose
oldest unpaid debit is older than its max_outstanding_days or whose outstanding exceeds its
limit, audit each pause and notify the retailer once (db/credit/guardrails.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from ...db.credit.guardrails import Exposure, Pause, count_active, pause_retailers
from ...domain.credit_guardrails import guardrail_decision
from ...partners.twilio import WhatsAppClient
from .messages import Delivery, deliver

KIND = "credit_paused"


def decide(business_date: date):
    def _decide(exposure: Exposure) -> Pause | None:
        decision = guardrail_decision(
            outstanding=exposure.outstanding,
            credit_limit=exposure.credit_limit,
            currency=exposure.currency,
            oldest_unpaid_debit_on=exposure.oldest_unpaid_on,
            business_date=business_date,
            max_outstanding_days=exposure.max_outstanding_days,
        )
        if not decision.pause or decision.reason is None:
            return None
        return Pause(exposure.retailer_id, decision.reason, decision.breaches)

    return _decide


@dataclass
class GuardrailReport:
    business_date: date
    active_before: int
    paused: list[dict] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)


def run_guardrails(
    engine: sa.Engine,
    client: WhatsAppClient,
    *,
    business_date: date,
    tz: str,
    actor: str,
    action: str,
    run_id: str | None,
    content_sid: str,
) -> GuardrailReport:
    with engine.begin() as conn:
        active = count_active(conn)
        paused = pause_retailers(
            conn,
            business_date=business_date,
            tz=tz,
            decide=decide(business_date),
            actor=actor,
            action=action,
            run_id=run_id,
            content_sid=content_sid,
        )
    report = GuardrailReport(business_date, active, paused)
    report.delivery = deliver(engine, client, KIND)
    return report
