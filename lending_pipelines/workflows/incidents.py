"""Telling operators about a condition once per incident (start, reminders, resolution)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ..db import incidents as incidents_db
from ..domain.incidents import IncidentAction

# `AlertsResource.send`: (title, text, severity, fields) -> delivered
Send = Callable[..., bool]


def report_condition(
    engine: sa.Engine,
    send: Send,
    *,
    key: str,
    firing: bool,
    title: str,
    text: str,
    severity: str = "error",
    remind_every: timedelta | None = None,
    now: datetime | None = None,
) -> IncidentAction:
    """Record one observation of condition `key` and send the alert it calls for, if any.

    The decision commits before the alert is sent (no transaction is held across the webhook
    call); an alert that cannot be delivered leaves the incident due, so the next observation
    sends it again.
    """
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        action = incidents_db.observe(
            conn,
            key,
            firing=firing,
            title=title,
            severity=severity,
            text=text,
            now=now,
            remind_every=remind_every,
        )
    if action is IncidentAction.NONE:
        return action
    if action is IncidentAction.RESOLVE:
        send(f"Resolved: {title}", text, "info", {"condition": key})
        return action
    prefix = "Still failing: " if action is IncidentAction.REMIND else ""
    if not send(f"{prefix}{title}", text, severity, {"condition": key}):
        with engine.begin() as conn:
            incidents_db.mark_undelivered(conn, key)
    return action


def reminder_interval(minutes: int) -> timedelta | None:
    """LENDING_ALERT_REMINDER_MINUTES as an interval (0: no reminders)."""
    return timedelta(minutes=minutes) if minutes > 0 else None
