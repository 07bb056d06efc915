"""Borrower reminders through Dagster and the sandbox's Twilio: only within 08:00-19:00 in each
borrower's timezone, at most one per loan per day, the template by bucket, none for current,
closed or legal loans, nothing while REMINDERS_ENABLED is off."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa
import time_machine

from lending_pipelines.assets.collections.jobs import COLLECTIONS_JOBS
from lending_pipelines.db.collections.tables import collection_loans
from lending_pipelines.db.flags import set_flag
from lending_pipelines.resources.collections_config import DEFAULT_TEMPLATES, CollectionsConfig
from lending_pipelines.workflows.collections.dpd import run_dpd
from tests.collections_book import add_loan, run_job
from tests.whatsapp_sending import sandbox_whatsapp

IST = ZoneInfo("Asia/Kolkata")
DAY = datetime(2026, 11, 30, tzinfo=IST).date()
MORNING_IST = datetime(2026, 11, 30, 10, 0, tzinfo=IST)  # 23:30 the day before in New York
EVENING_IST = datetime(2026, 11, 30, 20, 30, tzinfo=IST)  # 10:00 in New York


@pytest.fixture
def defs(database, sandbox):
    whatsapp = sandbox_whatsapp(sandbox)
    return dg.Definitions(
        jobs=COLLECTIONS_JOBS,
        resources={
            "database": database,
            "whatsapp": whatsapp,
            "collections_config": CollectionsConfig(inbox_path="-"),
        },
    )


def due(days: int):
    return [(DAY - timedelta(days=days), 100_00)]


@pytest.fixture
def book(db):
    with db.begin() as conn:
        loans = {
            "1-30": add_loan(conn, due(10), phone="+919800000010"),
            "31-60": add_loan(conn, due(45), phone="+919800000045"),
            "61-90": add_loan(conn, due(75), phone="+919800000075"),
            "90+": add_loan(conn, due(120), phone="+919800000120"),
            "current": add_loan(conn, due(-5), phone="+919800000001"),
            "closed": add_loan(conn, due(50), status="CLOSED", phone="+919800000002"),
            "legal": add_loan(conn, due(200), status="LEGAL", phone="+919800000003"),
            "new_york": add_loan(conn, due(20), phone="+12125550100"),
        }
        conn.execute(
            sa.update(collection_loans)
            .where(collection_loans.c.id == loans["new_york"])
            .values(borrower_timezone="America/New_York")
        )
    run_dpd(db, [DAY], run_id="test")
    return loans


def messages(sandbox) -> list[tuple[str, str]]:
    state = sandbox.state("twilio")
    return sorted(
        (m["to"].removeprefix("whatsapp:"), m.get("content_sid") or m.get("ContentSid"))
        for m in state["messages"]
    )


def reminders(defs):
    result = run_job(defs, "collection_reminders_job")
    (event,) = [e for e in result.all_node_events if e.is_successful_output]
    return {k: v.value for k, v in event.step_output_data.metadata.items()}


def test_reminders_respect_each_borrowers_hours_once_a_day_with_the_buckets_tone(
    defs, sandbox, book
):
    with time_machine.travel(MORNING_IST, tick=True):
        first = reminders(defs)
        again = reminders(defs)
    assert first["sent"] == 4 and first["outside_contact_hours"] == 1
    assert first["sent_by_bucket"] == {"1-30": 1, "31-60": 1, "61-90": 1, "90+": 1}
    assert messages(sandbox) == sorted(
        [(f"+9198000000{n}", DEFAULT_TEMPLATES[b])
         for n, b in (("10", "1-30"), ("45", "31-60"), ("75", "61-90"))]
        + [("+919800000120", DEFAULT_TEMPLATES["90+"])]
    )  # fmt: skip
    assert again["sent"] == 0 and "outside the contact hours" in again["reason"]

    with time_machine.travel(EVENING_IST, tick=True):
        evening = reminders(defs)
    # 20:30 in India: nobody there; 10:00 in New York: that borrower gets one
    assert evening["sent"] == 1 and evening["sent_by_bucket"] == {"1-30": 1}
    assert len(messages(sandbox)) == 5


def test_a_tick_outside_the_hours_sends_nothing_and_says_so(defs, sandbox, book):
    with time_machine.travel(datetime(2026, 11, 30, 7, 30, tzinfo=IST), tick=True):
        early = reminders(defs)
    assert early["sent"] == 0
    assert early["reason"].startswith("nothing sent: 5 borrower(s) due a reminder are outside")
    assert messages(sandbox) == []


def test_reminders_enabled_off_sends_nothing_until_flipped_back(db, defs, sandbox, book):
    with db.begin() as conn:
        set_flag(conn, "REMINDERS_ENABLED", False, "ops@example.com", "complaint review")
    with time_machine.travel(MORNING_IST, tick=True):
        off = reminders(defs)
        assert off["skipped"] is True and off["reason"].startswith("REMINDERS_ENABLED is off")
        assert messages(sandbox) == []
        with db.begin() as conn:
            set_flag(conn, "REMINDERS_ENABLED", True, "ops@example.com", "review done")
        assert reminders(defs)["sent"] == 4
