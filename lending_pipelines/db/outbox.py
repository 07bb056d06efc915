"""The outbox: at-most-once attempts for side effects whose API has no idempotency key.

Life of a row (table `lending.outbox`, key `idempotency_key`):

    pending ──claim──▶ sending ──▶ sent        (the provider accepted it)
       ▲                  │  ├──▶ failed      (a definite refusal: bad number, 63016, ...)
       └────release───────┘  └──▶ unknown     (ambiguous: timeout after sending, 5xx, crash)

`claim` is the only way into `sending` and only from `pending`, so two workers (or a retry)
can never both send one key. `release` is for failures the provider certainly did not process
(429, connection refused). `unknown` is never retried automatically: an operator (or a
reconciliation against the provider's message log) resolves it with `resolve_unknown`.
`sent_at` holds the time of the (last) send attempt, so a row stuck in `sending` after a crash
can be found by age (`mark_stale_sending_unknown`).

Separately, `delivery_status` holds what the provider last reported about a sent message
(status callbacks, `apply_delivery_statuses`); it only moves forward, and a reported failure
(e.g. 63016) turns the row `failed` with the error code in `last_error`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ..domain.message_status import RANK, DeliveryUpdate, furthest
from .audit import record_audit
from .common import outbox


class OutboxConflictError(ValueError):
    """The same idempotency key was enqueued with a different target or payload."""


class OutboxStateError(RuntimeError):
    """An outcome recorded for a row that is not in the state the transition needs."""


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    idempotency_key: str
    channel: str
    target: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_error: str | None
    provider_message_id: str | None
    created_at: datetime
    sent_at: datetime | None
    delivery_status: str | None = None
    delivery_status_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryApplied:
    """What `apply_delivery_statuses` did, per provider message id."""

    changed: dict[str, str]  # message id → the delivery status now recorded
    unknown: frozenset[str]  # no outbox row carries this message id


@dataclass(frozen=True)
class SendOutcome:
    idempotency_key: str
    status: str
    provider_message_id: str | None
    error: str | None
    attempted_now: bool  # False: the key had already been attempted; nothing was sent now

    @property
    def sent(self) -> bool:
        return self.status == "sent"


def _entry(row: sa.Row) -> OutboxEntry:
    return OutboxEntry(**{name: row._mapping[name] for name in OutboxEntry.__dataclass_fields__})


def _normalised(payload: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(payload, default=str))


def get(conn: Connection, idempotency_key: str) -> OutboxEntry | None:
    row = conn.execute(sa.select(outbox).where(outbox.c.idempotency_key == idempotency_key)).first()
    return None if row is None else _entry(row)


def enqueue(
    conn: Connection,
    *,
    idempotency_key: str,
    channel: str,
    target: str,
    payload: dict[str, Any],
) -> OutboxEntry:
    """Store the intent once. The same key again returns the stored row; with a different
    target or payload it raises OutboxConflictError (the caller built the key wrongly)."""
    if not idempotency_key:
        raise ValueError("outbox: idempotency_key is empty")
    normalised = _normalised(payload)
    row = conn.execute(
        insert(outbox)
        .values(
            idempotency_key=idempotency_key,
            channel=channel,
            target=target,
            payload=normalised,
            status="pending",
        )
        .on_conflict_do_nothing(index_elements=[outbox.c.idempotency_key])
        .returning(*outbox.c)
    ).first()
    if row is not None:
        return _entry(row)
    existing = get(conn, idempotency_key)
    if existing is None:  # deleted between the two statements; practically impossible
        raise OutboxStateError(f"outbox {idempotency_key}: vanished during enqueue")
    if (existing.channel, existing.target, existing.payload) != (channel, target, normalised):
        raise OutboxConflictError(
            f"outbox {idempotency_key}: already enqueued for {existing.channel} "
            f"{existing.target} with a different payload; refusing {channel} {target}"
        )
    return existing


def claim(conn: Connection, idempotency_key: str) -> OutboxEntry | None:
    """pending → sending (attempts + 1). None when the key is not pending (already attempted,
    or claimed by someone else right now)."""
    row = conn.execute(
        sa.update(outbox)
        .where(outbox.c.idempotency_key == idempotency_key, outbox.c.status == "pending")
        .values(status="sending", attempts=outbox.c.attempts + 1, sent_at=sa.func.now())
        .returning(*outbox.c)
    ).first()
    return None if row is None else _entry(row)


def _finish(conn: Connection, idempotency_key: str, from_status: str, **values: Any) -> None:
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.idempotency_key == idempotency_key, outbox.c.status == from_status)
        .values(**values)
    )
    if result.rowcount != 1:
        current = get(conn, idempotency_key)
        raise OutboxStateError(
            f"outbox {idempotency_key}: expected status {from_status!r}, found "
            f"{current.status if current else 'no row'!r}; not changing it to {values['status']!r}"
        )


def record_sent(conn: Connection, idempotency_key: str, *, provider_message_id: str) -> None:
    _finish(
        conn,
        idempotency_key,
        "sending",
        status="sent",
        provider_message_id=provider_message_id,
        last_error=None,
    )


def record_failed(conn: Connection, idempotency_key: str, *, error: str) -> None:
    _finish(conn, idempotency_key, "sending", status="failed", last_error=error)


def record_unknown(conn: Connection, idempotency_key: str, *, error: str) -> None:
    _finish(conn, idempotency_key, "sending", status="unknown", last_error=error)


def release(conn: Connection, idempotency_key: str, *, error: str) -> None:
    """sending → pending: the provider certainly did not process the attempt (429, refused)."""
    _finish(conn, idempotency_key, "sending", status="pending", last_error=error)


def outcome(conn: Connection, idempotency_key: str, *, attempted_now: bool) -> SendOutcome:
    entry = get(conn, idempotency_key)
    if entry is None:
        raise OutboxStateError(f"outbox {idempotency_key}: no such row")
    return SendOutcome(
        idempotency_key=idempotency_key,
        status=entry.status,
        provider_message_id=entry.provider_message_id,
        error=entry.last_error,
        attempted_now=attempted_now,
    )


def mark_stale_sending_unknown(conn: Connection, *, older_than: timedelta) -> int:
    """Rows left in `sending` by a crashed worker become `unknown` (never resent blindly)."""
    result = conn.execute(
        sa.update(outbox)
        .where(
            outbox.c.status == "sending",
            outbox.c.sent_at < sa.func.now() - sa.literal(older_than),
        )
        .values(status="unknown", last_error="worker stopped while sending; outcome unknown")
    )
    return result.rowcount


def apply_delivery_statuses(conn: Connection, updates: Iterable[DeliveryUpdate]) -> DeliveryApplied:
    """Apply reported delivery statuses to the rows carrying their message ids, in one UPDATE.

    Per message only the update furthest along counts, and it is applied only when it is
    further along than the row's recorded `delivery_status` (a late `sent` after `delivered`
    changes nothing; see domain.message_status). A failure (`failed`/`undelivered`) also turns
    a `sent`/`unknown` row `failed` with the error code in `last_error`.
    """
    best = furthest(updates)
    if not best:
        return DeliveryApplied({}, frozenset())
    now = datetime.now(UTC)
    reported = sa.values(
        sa.column("message_id", sa.Text),
        sa.column("status", sa.Text),
        sa.column("rank", sa.Integer),
        sa.column("failure", sa.Text),
        sa.column("reported_at", sa.DateTime(timezone=True)),
        name="reported",
    ).data(
        [
            (sid, u.status, u.rank, u.failure, u.reported_at or now)
            for sid, u in sorted(best.items())
        ]
    )
    recorded_rank = sa.case(RANK, value=outbox.c.delivery_status, else_=-1)
    changed = conn.execute(
        sa.update(outbox)
        .where(
            outbox.c.provider_message_id == reported.c.message_id,
            reported.c.rank > recorded_rank,
        )
        .values(
            delivery_status=reported.c.status,
            delivery_status_at=reported.c.reported_at,
            status=sa.case(
                (
                    sa.and_(
                        reported.c.failure.is_not(None), outbox.c.status.in_(("sent", "unknown"))
                    ),
                    "failed",
                ),
                else_=outbox.c.status,
            ),
            last_error=sa.func.coalesce(reported.c.failure, outbox.c.last_error),
        )
        .returning(outbox.c.provider_message_id, outbox.c.delivery_status)
    ).all()
    known = set(
        conn.execute(
            sa.select(outbox.c.provider_message_id)
            .where(outbox.c.provider_message_id.in_(list(best)))
            .distinct()
        ).scalars()
    )
    return DeliveryApplied(
        changed={sid: status for sid, status in changed}, unknown=frozenset(set(best) - known)
    )


def record_delivery_status(
    conn: Connection, *, provider_message_id: str, status: str, error_code: int | None
) -> int:
    """Apply one provider status callback (see `apply_delivery_statuses`): a failed/undelivered
    message marks its row failed; delivered/read are recorded as its delivery status.
    Returns the number of rows changed (0 for a late or repeated status, or an unknown id).
    """
    applied = apply_delivery_statuses(
        conn, [DeliveryUpdate(provider_message_id, status, error_code)]
    )
    return len(applied.changed)


def resolve_unknown(
    conn: Connection,
    idempotency_key: str,
    *,
    status: str,
    actor: str,
    reason: str,
    provider_message_id: str | None = None,
    run_id: str | None = None,
) -> None:
    """An operator's decision for an `unknown` row: it was `sent`, it `failed`, or send it
    again (`pending`). Audited."""
    if status not in {"sent", "failed", "pending"}:
        raise ValueError(f"outbox {idempotency_key}: cannot resolve to status {status!r}")
    values: dict[str, Any] = {"status": status}
    if provider_message_id:
        values["provider_message_id"] = provider_message_id
    _finish(conn, idempotency_key, "unknown", **values)
    record_audit(
        conn,
        actor=actor,
        action="outbox.resolve_unknown",
        entity="outbox",
        entity_id=idempotency_key,
        old_value={"status": "unknown"},
        new_value=values,
        reason=reason,
        run_id=run_id,
    )
