"""Credit business days as partitions, in LENDING_CREDIT_TIMEZONE (Asia/Kolkata by default;
read when the definitions load: partitions and schedules exist before any resource)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from ...settings import get_settings

TIMEZONE = get_settings().credit_timezone

# end_offset=1: today's business day exists as a partition (guardrails, reminders, follow-ups
# run on the current day).
CREDIT_DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone=TIMEZONE, end_offset=1)


def today() -> date:
    return datetime.now(ZoneInfo(TIMEZONE)).date()


def local(when: datetime | None) -> datetime:
    return (when or datetime.now(UTC)).astimezone(ZoneInfo(TIMEZONE))
