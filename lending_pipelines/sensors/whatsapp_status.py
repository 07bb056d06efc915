"""Applies stored Twilio status callbacks to the WhatsApp outbox.

The receiver stores every callback in `inbound_events` (provider "twilio", event id
"<MessageSid>:<MessageStatus>"). Each tick this sensor takes the unapplied ones in batches and,
per batch and in one transaction, records their statuses on the outbox rows carrying those
message sids with one UPDATE (db.outbox.apply_delivery_statuses: only forward, a failure
recorded as `failed` with its error code) and marks the events processed with one more. The work
is two small statements per batch, so it happens in the sensor itself rather than in a run; the
tick's SkipReason says what it applied.

A callback whose payload cannot be read, or whose message sid no outbox row carries, is marked
processed with an error text (kept, never dropped; set `processed_at` back to NULL to apply it
again). Because Twilio may call back before `send_whatsapp_once` has recorded the message sid,
an unknown sid only counts as an error once the callback is older than UNMATCHED_GRACE; until
then it waits for a later tick. Skips while CRON_ENABLED is off — the callbacks stay stored
until it is on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa

from ..db import inbound, outbox
from ..domain.message_status import DeliveryUpdate, rank
from ..kill_switch import automation_paused
from ..partners.twilio import parse_status_callback
from ..resources.database import DatabaseResource

PROVIDER = "twilio"
BATCH_SIZE = 500
MAX_BATCHES_PER_TICK = 10
UNMATCHED_GRACE = timedelta(minutes=2)
# A stored status form is under 16 KiB (the receiver's cap); a payload larger than this as JSON
# was stored some other way and is reported by its size, never loaded.
MAX_PAYLOAD_BYTES = 64 * 1024


@dataclass
class StatusReport:
    """What one pass over the stored callbacks did."""

    applied: Counter[str] = field(default_factory=Counter)  # delivery status → rows moved to it
    processed: int = 0  # callbacks marked processed
    unchanged: int = 0  # processed callbacks that changed nothing (late, repeated, overtaken)
    errors: dict[int, str] = field(default_factory=dict)  # inbound event id → error text
    unknown_sids: int = 0
    malformed: int = 0
    waiting: int = 0  # unknown sid, younger than UNMATCHED_GRACE: left for a later tick
    more: bool = False  # stopped at MAX_BATCHES_PER_TICK with callbacks left

    def summary(self) -> str:
        if not self.processed and not self.waiting:
            return "no unapplied Twilio status callbacks"
        parts = [
            f"processed {self.processed} Twilio status callback(s): "
            f"{sum(self.applied.values())} outbox row(s) updated"
            + (
                f" ({', '.join(f'{s} {n}' for s, n in sorted(self.applied.items()))})"
                if self.applied
                else ""
            )
        ]
        if self.unchanged:
            parts.append(f"{self.unchanged} changed nothing (late, repeated or overtaken)")
        if self.errors:
            parts.append(
                f"{self.unknown_sids} with an unknown message sid and {self.malformed} "
                "malformed kept with an error"
            )
        if self.waiting:
            parts.append(f"{self.waiting} for a message sid not recorded yet left for a later tick")
        if self.more:
            parts.append("more are waiting; the next tick continues")
        return "; ".join(parts)


def _update(event: sa.Row) -> DeliveryUpdate:
    """The delivery update a stored callback reports. ValueError names what is wrong."""
    payload: Any = event.payload
    if payload is None and event.payload_bytes > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"twilio status callback: payload of {event.payload_bytes} bytes is over the "
            f"{MAX_PAYLOAD_BYTES}-byte limit; not loaded"
        )
    if not isinstance(payload, dict):
        raise ValueError(f"twilio status callback: payload is {type(payload).__name__}, not a form")
    callback = parse_status_callback({str(k): str(v) for k, v in payload.items()})
    try:
        rank(callback.status)
    except ValueError as exc:
        raise ValueError(f"twilio status callback {callback.message_sid}: {exc}") from None
    return DeliveryUpdate(
        callback.message_sid, callback.status, callback.error_code, event.received_at
    )


def apply_status_callbacks(
    engine: sa.Engine,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES_PER_TICK,
    now: datetime | None = None,
) -> StatusReport:
    """Apply stored, unapplied Twilio status callbacks to the outbox (oldest first)."""
    report = StatusReport()
    now = now or datetime.now(UTC)
    after_id = 0
    for _ in range(max_batches):
        with engine.begin() as conn:
            events = inbound.unprocessed_events(
                conn,
                PROVIDER,
                limit=batch_size,
                after_id=after_id,
                max_payload_bytes=MAX_PAYLOAD_BYTES,
            )
            if not events:
                return report
            after_id = events[-1].id
            outcomes: dict[int, str | None] = {}
            updates: dict[int, DeliveryUpdate] = {}
            for event in events:
                try:
                    updates[event.id] = _update(event)
                except ValueError as exc:
                    outcomes[event.id] = str(exc)
                    report.malformed += 1
            result = outbox.apply_delivery_statuses(conn, updates.values())
            known = 0
            for event_id, update in updates.items():
                sid = update.provider_message_id
                if sid not in result.unknown:
                    outcomes[event_id] = None
                    known += 1
                elif now - update.reported_at < UNMATCHED_GRACE:
                    report.waiting += 1  # stays unprocessed: the send may not be recorded yet
                else:
                    outcomes[event_id] = f"no outbox row has MessageSid {sid}"
                    report.unknown_sids += 1
            inbound.mark_outcomes(conn, outcomes)
        report.applied.update(result.changed.values())
        report.unchanged += known - len(result.changed)
        report.processed += len(outcomes)
        report.errors.update({i: e for i, e in outcomes.items() if e})
        if len(events) < batch_size:
            return report
    report.more = True
    return report


@dg.sensor(
    name="whatsapp_delivery_status_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Applies stored Twilio status callbacks (delivered, read, failed 63016, ...) "
    "to the WhatsApp outbox rows, never backwards; unreadable or unmatched ones are kept with "
    "an error.",
)
def whatsapp_delivery_status_sensor(
    context: dg.SensorEvaluationContext, database: DatabaseResource
):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    report = apply_status_callbacks(database.get_engine())
    for event_id, error in sorted(report.errors.items()):
        context.log.warning(f"inbound event {event_id}: {error}")
    return dg.SkipReason(report.summary())


WHATSAPP_SENSORS = [whatsapp_delivery_status_sensor]
