"""Sensors read stored callbacks in bounded memory: a payload stored before the receiver capped
bodies (or by anything else writing the table) is never loaded whole into the sensor."""

from __future__ import annotations

import tracemalloc

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from lending_pipelines.db import inbound
from lending_pipelines.db.common import inbound_events
from lending_pipelines.sensors.whatsapp_status import MAX_PAYLOAD_BYTES, apply_status_callbacks

TWENTY_MB = 20_000_000


def store_big(db, event_id: str) -> None:
    with db.begin() as conn:  # built inside PostgreSQL: the test never holds it either
        conn.execute(
            insert(inbound_events).values(
                provider="twilio",
                event_id=event_id,
                payload=sa.func.jsonb_build_object("MessageSid", sa.func.repeat("a", TWENTY_MB)),
            )
        )


def test_an_oversized_stored_payload_is_reported_by_size_not_loaded(db):
    store_big(db, "big")
    with db.begin() as conn:
        (event,) = inbound.unprocessed_events(conn, "twilio", max_payload_bytes=65536)
    assert event.payload is None
    assert event.payload_bytes > TWENTY_MB


def test_the_whatsapp_sensor_marks_oversized_callbacks_without_loading_them(db):
    store_big(db, "big-1")
    store_big(db, "big-2")
    with db.begin() as conn:
        inbound.store_event(conn, "twilio", "small", {"MessageSid": "junk"}, "twilio.message.x")
    tracemalloc.start()
    try:
        report = apply_status_callbacks(db)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"peak {peak} bytes of Python allocations"
    assert report.processed == 3 and report.malformed == 3
    with db.connect() as conn:
        errors = dict(
            conn.execute(sa.select(inbound_events.c.event_id, inbound_events.c.error)).all()
        )
    assert f"over the {MAX_PAYLOAD_BYTES}-byte limit; not loaded" in errors["big-1"]
    assert errors["big-2"].startswith("twilio status callback: payload of 2000")
    assert "'MessageSid' is 'junk'" in errors["small"]
