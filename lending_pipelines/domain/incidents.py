"""Alerts per incident, not per observation: a condition that keeps failing alerts when it
starts, optionally reminds at an interval, and says once when it clears."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class IncidentAction(StrEnum):
    OPEN = "open"  # the condition started: alert
    REMIND = "remind"  # still failing and the reminder interval has passed: alert again
    RESOLVE = "resolve"  # the condition cleared: say so once
    NONE = "none"  # nothing new to say


@dataclass(frozen=True)
class OpenIncident:
    opened_at: datetime
    # None when the last notification could not be delivered: the next observation retries it.
    last_notified_at: datetime | None


def next_action(
    incident: OpenIncident | None,
    firing: bool,
    now: datetime,
    remind_every: timedelta | None,
) -> IncidentAction:
    """What to tell operators about one observation of a condition."""
    if incident is None:
        return IncidentAction.OPEN if firing else IncidentAction.NONE
    if not firing:
        return IncidentAction.RESOLVE
    if incident.last_notified_at is None:
        return IncidentAction.REMIND
    if remind_every is not None and now - incident.last_notified_at >= remind_every:
        return IncidentAction.REMIND
    return IncidentAction.NONE
