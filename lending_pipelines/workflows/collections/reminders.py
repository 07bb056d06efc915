"""Borrower reminders over WhatsApp, within the RBI fair-practice hours in the borrower's own
timezone, at most one per loan per local day, the template (tone) chosen by bucket.

Each message goes through the outbox (`send_whatsapp_once`, key
`collections-reminder:<loan>:<local date>`): one attempt per key, so a crash between the send
and the `collection_reminders` row only delays the row — the next tick gets the recorded outcome
back and sends nothing. Loans are sent one by one (an API call each), the selection is one query.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from ...db.collections import reminders as reminders_db
from ...partners.twilio import WhatsAppClient
from ..messaging import send_whatsapp_once


@dataclass
class ReminderReport:
    sent: Counter = field(default_factory=Counter)  # bucket -> messages sent now
    failed: list[dict] = field(default_factory=list)
    already_attempted: int = 0
    outside_hours: int = 0
    duration_seconds: float = 0.0

    @property
    def summary(self) -> str:
        if not self.sent and not self.failed and not self.already_attempted:
            if self.outside_hours:
                return (
                    f"nothing sent: {self.outside_hours} borrower(s) due a reminder are outside "
                    "the contact hours in their timezone"
                )
            return "nothing sent: no delinquent loan is due a reminder today"
        return (
            f"sent {sum(self.sent.values())} reminder(s), {len(self.failed)} failed, "
            f"{self.outside_hours} outside the contact hours"
        )


def send_reminders(
    engine: sa.Engine,
    client: WhatsAppClient,
    *,
    now: datetime,
    start_hour: int,
    end_hour: int,
    templates: Mapping[str, str],
) -> ReminderReport:
    started = time.monotonic()
    report = ReminderReport()
    with engine.connect() as conn:
        due, report.outside_hours = reminders_db.reminder_candidates(
            conn, now=now, start_hour=start_hour, end_hour=end_hour
        )
    for candidate in due:
        outcome = send_whatsapp_once(
            client,
            engine,
            candidate.idempotency_key,
            candidate.phone,
            content_sid=templates[candidate.bucket],
            variables={"1": str(candidate.loan_id), "2": str(candidate.dpd)},
        )
        with engine.begin() as conn:
            reminders_db.record_reminder(conn, candidate)
        if not outcome.attempted_now:
            report.already_attempted += 1
        elif outcome.status == "sent":
            report.sent[candidate.bucket] += 1
        else:
            report.failed.append(
                {"loan_id": candidate.loan_id, "status": outcome.status, "error": outcome.error}
            )
    report.duration_seconds = time.monotonic() - started
    return report
