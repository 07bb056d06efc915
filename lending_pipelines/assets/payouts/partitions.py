"""Payout dates as partitions: 02:00 on the 1st and 15th, in LENDING_PAYOUTS_TIMEZONE (read when
the definitions load: partitions and schedules exist before any resource)."""

from datetime import date

import dagster as dg

from ...settings import get_settings

PAYOUTS_CRON = "0 2 1,15 * *"
PAYOUTS_START = "2025-01-01"

payout_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule=PAYOUTS_CRON,
    start=PAYOUTS_START,
    fmt="%Y-%m-%d",
    timezone=get_settings().payouts_timezone,
    # The partition of a payout date starts at its 02:00 run (not at the previous date's), so
    # the schedule tick of the 15th runs partition "<month>-15".
    end_offset=1,
)


def payout_date_of(partition_key: str) -> date:
    return date.fromisoformat(partition_key)
