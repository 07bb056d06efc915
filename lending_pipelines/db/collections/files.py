"""Payment files: one row per distinct content (sha256 unique), written in the same transaction
as the file's payments and quarantined rows, so a file is posted at most once however many
runs pick it up."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .tables import payment_files


def recorded_file(conn: Connection, sha256: str) -> dict | None:
    row = conn.execute(
        sa.select(
            payment_files.c.id, payment_files.c.name, payment_files.c.status,
            payment_files.c.posted_at,
        ).where(payment_files.c.sha256 == sha256)
    ).mappings().first()  # fmt: skip
    return dict(row) if row else None


def record_file(
    conn: Connection,
    *,
    name: str,
    sha256: str,
    received_at: datetime,
    status: str,
    rows: int = 0,
    accepted: int = 0,
    rejected: int = 0,
    accepted_minor: int = 0,
    reason: str | None = None,
    run_id: str | None,
) -> int:
    return conn.execute(
        sa.insert(payment_files)
        .values(
            name=name,
            sha256=sha256,
            received_at=received_at,
            status=status,
            rows=rows,
            accepted=accepted,
            rejected=rejected,
            accepted_minor=accepted_minor,
            reason=reason,
            run_id=run_id,
        )
        .returning(payment_files.c.id)
    ).scalar_one()
