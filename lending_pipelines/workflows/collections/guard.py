"""The financial guard's report: refusals counted by the database become records and an alert.

The trigger (migration 0014) refuses the UPDATE and, before raising, advances the refusal
counter of the column: a sequence, which a rollback does not undo. Here the counters' advance
since the last look is recorded in `guard_refusals` (one transaction, with the marks), and the
condition `collections_financial_guard` is reported through the incident workflow: an alert when
refusals appear, a "Resolved" at the first quiet look after them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from ...db.collections.guard import NewRefusals, record_new_refusals
from ..incidents import report_condition

CONDITION = "collections_financial_guard"
TITLE = "Collections financial guard refused changes to the loan book"


def report_guard_refusals(
    engine: sa.Engine, send: Callable[..., bool], *, remind_every: timedelta | None = None
) -> list[NewRefusals]:
    with engine.begin() as conn:
        found = record_new_refusals(conn)
    text = (
        "Refused UPDATEs since the last look: "
        + ", ".join(f"{f.table}.{f.column} x{f.refusals}" for f in found)
        + ". Only the collections jobs may change DPD, bucket, status, principal and the "
        "schedule; find who tried in the PostgreSQL log (the statement and the error are logged)."
        if found
        else "No refused change since the last look."
    )
    report_condition(
        engine, send, key=CONDITION, firing=bool(found), title=TITLE, text=text,
        remind_every=remind_every,
    )  # fmt: skip
    return found
