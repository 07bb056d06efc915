"""Alerts per incident on the real database: a condition failing on every poll for 90 minutes
alerts once (plus reminders), overlapping checks open one incident, and clearing says so once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from lending_pipelines.db.incidents import alert_incidents, open_incidents
from lending_pipelines.domain.incidents import IncidentAction
from lending_pipelines.workflows.incidents import report_condition

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Outbox:
    def __init__(self, delivered: bool = True) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.delivered = delivered
        self.lock = threading.Lock()

    def send(self, title, text, severity="error", fields=None) -> bool:
        with self.lock:
            self.sent.append((title, text, severity))
        return self.delivered


def observe(db, outbox, firing, minutes, remind_every=None, key="loans.partner_failing"):
    return report_condition(
        db, outbox.send, key=key, firing=firing, title="Partner failing every poll",
        text="kilimo: HTTP 401", remind_every=remind_every,
        now=START + timedelta(minutes=minutes),
    )  # fmt: skip


def test_a_partner_failing_every_poll_for_90_minutes_alerts_once_and_resolves_once(db):
    outbox = Outbox()
    actions = [observe(db, outbox, True, minute) for minute in range(0, 90, 10)]
    assert actions[0] is IncidentAction.OPEN
    assert set(actions[1:]) == {IncidentAction.NONE}
    assert observe(db, outbox, False, 100) is IncidentAction.RESOLVE
    assert observe(db, outbox, False, 110) is IncidentAction.NONE
    assert [(title, severity) for title, _, severity in outbox.sent] == [
        ("Partner failing every poll", "error"),
        ("Resolved: Partner failing every poll", "info"),
    ]
    with db.connect() as conn:
        row = conn.execute(sa.select(alert_incidents)).one()
    assert row.observations == 9 and row.resolved_at == START + timedelta(minutes=100)


def test_a_condition_that_keeps_failing_reminds_at_the_configured_interval(db):
    outbox = Outbox()
    for minute in range(0, 130, 10):
        observe(db, outbox, True, minute, remind_every=timedelta(hours=1))
    titles = [title for title, _, _ in outbox.sent]
    assert titles == [
        "Partner failing every poll",
        "Still failing: Partner failing every poll",
        "Still failing: Partner failing every poll",
    ]


def test_an_alert_that_could_not_be_delivered_is_sent_again_on_the_next_observation(db):
    down = Outbox(delivered=False)
    assert observe(db, down, True, 0) is IncidentAction.OPEN
    up = Outbox()
    assert observe(db, up, True, 10) is IncidentAction.REMIND
    assert observe(db, up, True, 20) is IncidentAction.NONE
    assert len(up.sent) == 1


def test_eight_checks_observing_the_same_failure_at_once_open_one_incident(db):
    outbox = Outbox()
    barrier = threading.Barrier(8)

    def check() -> None:
        barrier.wait()
        observe(db, outbox, True, 0)

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outbox.sent) == 1
    with db.connect() as conn:
        assert len(open_incidents(conn)) == 1


def test_a_new_failure_after_resolution_is_a_new_incident(db):
    outbox = Outbox()
    observe(db, outbox, True, 0)
    observe(db, outbox, False, 10)
    assert observe(db, outbox, True, 20) is IncidentAction.OPEN
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_incidents)).scalar() == 2
