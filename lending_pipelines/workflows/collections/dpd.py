"""The DPD run: compute business days for the whole book, in date order, one transaction each.

Days run under one session advisory lock (a day's bucket changes are read against the day
before it, so two runs must not interleave). Re-running a past day also recomputes every later
day already computed, in order: a backdated payment that changes one day changes the history
after it, and the history stays a chain of real changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from ...db.collections.dpd import DPD_LOCK, DayResult, compute_day, computed_days


@dataclass
class DpdReport:
    requested: list[date]
    days: list[DayResult] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def recomputed_later(self) -> list[date]:
        asked = set(self.requested)
        return [d.business_date for d in self.days if d.business_date not in asked]


def run_dpd(engine: sa.Engine, days: Iterable[date], *, run_id: str | None) -> DpdReport:
    requested = sorted(set(days))
    if not requested:
        raise ValueError("run_dpd needs at least one business date")
    report = DpdReport(requested)
    started = time.monotonic()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": DPD_LOCK})
        try:
            conn.commit()
            todo = sorted(set(requested) | set(computed_days(conn, requested[0])))
            conn.commit()
            for day in todo:
                with conn.begin():
                    report.days.append(compute_day(conn, day, run_id))
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": DPD_LOCK})
            conn.commit()
    report.duration_seconds = time.monotonic() - started
    return report
