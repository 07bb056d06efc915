"""Inbound partner events: stored once per (provider, event id), applied later by sensors."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from .common import inbound_events


def store_event(
    conn: Connection, provider: str, event_id: str, payload: Any, event_type: str | None = None
) -> bool:
    """Insert an event; False when (provider, event_id) was already stored (a redelivery)."""
    stmt = (
        insert(inbound_events)
        .values(provider=provider, event_id=event_id, event_type=event_type, payload=payload)
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(inbound_events.c.id)
    )
    return conn.execute(stmt).scalar() is not None


def waiting_events(conn: Connection, provider: str) -> tuple[int, int | None]:
    """How many of `provider`'s events wait to be applied, and the newest one's id."""
    count, newest = conn.execute(
        sa.select(sa.func.count(), sa.func.max(inbound_events.c.id)).where(
            inbound_events.c.provider == provider, inbound_events.c.processed_at.is_(None)
        )
    ).one()
    return count, newest


def unprocessed_events(
    conn: Connection,
    provider: str,
    limit: int = 500,
    after_id: int = 0,
    max_payload_bytes: int | None = None,
) -> list[sa.Row]:
    """Events not yet applied, oldest first, locked so two appliers never take the same one.

    With `max_payload_bytes`, a payload larger than that (as JSON text) is not sent to us: the
    row's `payload` is None and `payload_bytes` says how large it is, so a batch costs at most
    `limit` x `max_payload_bytes` of memory whatever was stored."""
    columns: list = list(inbound_events.c)
    if max_payload_bytes is not None:
        size = sa.func.octet_length(sa.cast(inbound_events.c.payload, sa.Text))
        columns = [c for c in inbound_events.c if c.name != "payload"] + [
            sa.case((size <= max_payload_bytes, inbound_events.c.payload), else_=sa.null()).label(
                "payload"
            ),
            size.label("payload_bytes"),
        ]
    return list(
        conn.execute(
            sa.select(*columns)
            .where(
                inbound_events.c.provider == provider,
                inbound_events.c.processed_at.is_(None),
                inbound_events.c.id > after_id,
            )
            .order_by(inbound_events.c.id)
            .limit(limit)
            .with_for_update(of=inbound_events, skip_locked=True)
        )
    )


def mark_outcomes(conn: Connection, outcomes: dict[int, str | None]) -> None:
    """Mark events processed, each with its own error (None = applied), in one UPDATE."""
    if not outcomes:
        return
    done = sa.values(sa.column("id", sa.BigInteger), sa.column("error", sa.Text), name="done").data(
        sorted(outcomes.items())
    )
    conn.execute(
        sa.update(inbound_events)
        .where(inbound_events.c.id == done.c.id)
        .values(processed_at=sa.func.now(), error=done.c.error)
    )
