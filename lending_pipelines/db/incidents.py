"""Open alert incidents: at most one per condition key, so overlapping checks alert once."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Connection

from ..domain.incidents import IncidentAction, OpenIncident, next_action
from .common import NOW
from .meta import metadata

alert_incidents = sa.Table(
    "alert_incidents",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("last_text", sa.Text, nullable=False),
    sa.Column("observations", sa.Integer, nullable=False, server_default="1"),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("last_notified_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Index(
        "uq_alert_incidents_open_key",
        "key",
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
    ),
)


def observe(
    conn: Connection,
    key: str,
    *,
    firing: bool,
    title: str,
    severity: str,
    text: str,
    now: datetime,
    remind_every: timedelta | None,
) -> IncidentAction:
    """Record one observation of condition `key`; returns what operators must be told.

    The open incident is locked, so two checks observing at once decide once: a second opener
    finds the unique open key taken and says nothing.
    """
    t = alert_incidents
    row = conn.execute(
        sa.select(t.c.id, t.c.opened_at, t.c.last_notified_at)
        .where(t.c.key == key, t.c.resolved_at.is_(None))
        .with_for_update()
    ).first()
    incident = OpenIncident(row.opened_at, row.last_notified_at) if row else None
    action = next_action(incident, firing, now, remind_every)
    if action is IncidentAction.OPEN:
        opened = conn.execute(
            sa.text(
                "INSERT INTO lending.alert_incidents "
                "(key, title, severity, last_text, opened_at, last_notified_at) "
                "VALUES (:key, :title, :severity, :text, :now, :now) "
                "ON CONFLICT (key) WHERE resolved_at IS NULL DO NOTHING RETURNING id"
            ),
            {"key": key, "title": title, "severity": severity, "text": text, "now": now},
        ).first()
        return action if opened else IncidentAction.NONE
    if row is None:
        return action
    values: dict = {"last_text": text} if firing else {"resolved_at": now}
    if firing:
        values["observations"] = t.c.observations + 1
    if action is IncidentAction.REMIND:
        values["last_notified_at"] = now
    conn.execute(t.update().where(t.c.id == row.id).values(values))
    return action


def mark_undelivered(conn: Connection, key: str) -> None:
    """The alert for the open incident `key` was not delivered: the next observation resends."""
    t = alert_incidents
    conn.execute(
        t.update().where(t.c.key == key, t.c.resolved_at.is_(None)).values(last_notified_at=None)
    )


def open_incidents(conn: Connection) -> list[sa.Row]:
    t = alert_incidents
    return conn.execute(sa.select(t).where(t.c.resolved_at.is_(None)).order_by(t.c.opened_at)).all()
