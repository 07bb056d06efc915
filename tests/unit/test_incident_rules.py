"""When an alerting condition tells operators something: start, reminder, resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lending_pipelines.domain.incidents import IncidentAction, OpenIncident, next_action

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
OPEN_AN_HOUR_AGO = OpenIncident(opened_at=NOW - HOUR, last_notified_at=NOW - HOUR)


@pytest.mark.parametrize(
    ("incident", "firing", "remind_every", "expected"),
    [
        (None, True, None, IncidentAction.OPEN),
        (None, False, None, IncidentAction.NONE),
        (OPEN_AN_HOUR_AGO, True, None, IncidentAction.NONE),
        (OPEN_AN_HOUR_AGO, True, 2 * HOUR, IncidentAction.NONE),
        (OPEN_AN_HOUR_AGO, True, HOUR, IncidentAction.REMIND),
        (OPEN_AN_HOUR_AGO, False, HOUR, IncidentAction.RESOLVE),
        (OpenIncident(NOW - HOUR, None), True, None, IncidentAction.REMIND),
    ],
    ids=[
        "starts",
        "quiet",
        "still-failing-no-reminders",
        "still-failing-before-reminder",
        "still-failing-reminder-due",
        "clears",
        "undelivered-alert-is-resent",
    ],
)
def test_an_incident_alerts_on_start_reminder_and_resolution_only(
    incident, firing, remind_every, expected
):
    assert next_action(incident, firing, NOW, remind_every) is expected
