"""Business days in LENDING_COLLECTIONS_TIMEZONE (Asia/Kolkata), read when the definitions load.

The last partition is yesterday: DPD is as of the end of a business day, so the daily schedule
computes the day that just ended."""

from __future__ import annotations

from datetime import date, datetime

import dagster as dg

from ...settings import get_settings

TIMEZONE = get_settings().collections_timezone

COLLECTION_DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone=TIMEZONE)


def partition_days(context: dg.AssetExecutionContext) -> list[date]:
    """Every business day of the run: one for a daily run, many for a single-run backfill."""
    return [date.fromisoformat(key) for key in context.partition_keys]


def today() -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(TIMEZONE)).date()
