"""Business days as partitions, in LENDING_ESCROW_TIMEZONE (read when the definitions load:
partitions and schedules exist before any resource), and the day arithmetic of the runs."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from ...settings import get_settings

TIMEZONE = get_settings().escrow_timezone

# end_offset=1: today's business day exists as a partition (auto-deduct runs at 23:00 on it).
ESCROW_DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone=TIMEZONE, end_offset=1)


def business_day(value: str) -> date:
    """A Launchpad date: YYYY-MM-DD, not in the future (nothing is due there yet)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise dg.Failure(f"business_date {value!r} is not a YYYY-MM-DD date") from None
    if day > today():
        raise dg.Failure(f"business_date {value!r} is in the future ({TIMEZONE})")
    return day


def day_end(business_date: date) -> datetime:
    """The end of a business day in the escrow timezone (exclusive), as an aware datetime."""
    start = datetime.combine(business_date, datetime.min.time(), tzinfo=ZoneInfo(TIMEZONE))
    return start + timedelta(days=1)


def release_cutoff(business_date: date) -> datetime:
    """Escrows due by the end of the day, but never one that is not due yet right now."""
    return min(day_end(business_date), datetime.now(UTC))


def today() -> date:
    return datetime.now(ZoneInfo(TIMEZONE)).date()
