"""The financial guard from the pipeline's side: the writer marker its own jobs set, and the
refusal counters (one sequence per guarded column, advanced by the trigger before it raises, so
they survive the rollback of the refused statement)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ..meta import SCHEMA
from .tables import REFUSAL_COUNTERS, guard_refusal_marks, guard_refusals, refusal_sequence

WRITERS = ("dpd", "escalation", "close")


def as_writer(conn: Connection, writer: str) -> None:
    """Mark the current transaction as one of the pipeline's writers (until it ends)."""
    if writer not in WRITERS:
        raise ValueError(f"writer is {writer!r}, expected one of {WRITERS}")
    conn.execute(
        sa.text("SELECT set_config('lending.collections_writer', :w, true)"), {"w": writer}
    )


@dataclass(frozen=True)
class NewRefusals:
    table: str
    column: str
    refusals: int


def record_new_refusals(conn: Connection) -> list[NewRefusals]:
    """Turn every counter's advance since the last call into a `guard_refusals` row (one
    transaction: the marks and the rows commit together, so nothing is counted twice)."""
    selects = " UNION ALL ".join(
        f"SELECT '{refusal_sequence(t, c)}' AS name, "
        f"CASE WHEN is_called THEN last_value ELSE 0 END AS value "
        f"FROM {SCHEMA}.{refusal_sequence(t, c)}"
        for t, c in REFUSAL_COUNTERS
    )
    counters = dict(conn.execute(sa.text(selects)).all())
    marks = dict(
        conn.execute(
            sa.select(
                guard_refusal_marks.c.sequence_name, guard_refusal_marks.c.seen
            ).with_for_update()
        ).all()
    )
    found = []
    for table, column in REFUSAL_COUNTERS:
        name = refusal_sequence(table, column)
        delta = counters[name] - marks.get(name, 0)
        if delta > 0:
            found.append(NewRefusals(table, column, delta))
    if found:
        conn.execute(
            sa.insert(guard_refusals),
            [
                {"table_name": f.table, "column_name": f.column, "refusals": f.refusals}
                for f in found
            ],
        )
        stmt = insert(guard_refusal_marks).values(
            [
                {
                    "sequence_name": refusal_sequence(f.table, f.column),
                    "seen": counters[refusal_sequence(f.table, f.column)],
                }
                for f in found
            ]
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[guard_refusal_marks.c.sequence_name],
                set_={"seen": stmt.excluded.seen, "updated_at": sa.func.now()},
            )
        )
    return found
