"""What a partner's Fineract listing looked like: bad records set aside, totals that lie.

A loan that cannot be parsed is kept here (partner, loan id, field, value) until a later poll
no longer reports it; the rest of its page is tracked and paid as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from .common import NOW
from .loans import partners
from .meta import metadata

fineract_bad_records = sa.Table(
    "fineract_bad_records",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("partner_id", sa.Text, sa.ForeignKey(partners.c.id), nullable=False),
    sa.Column("fineract_loan_id", sa.BigInteger),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("expected", sa.Text, nullable=False),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("times_seen", sa.Integer, nullable=False, server_default="1"),
    sa.Column("last_poll_attempt_id", sa.BigInteger),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    # A record without a loan id (the id itself was malformed) is keyed as loan -1.
    sa.Index(
        "uq_fineract_bad_records_loan_field",
        "partner_id",
        sa.func.coalesce(sa.column("fineract_loan_id"), -1),
        "field",
        unique=True,
    ),
)

_UPSERT_BAD = sa.text(
    """
    INSERT INTO lending.fineract_bad_records AS b
        (partner_id, fineract_loan_id, field, value, expected, last_poll_attempt_id)
    SELECT :partner_id, t.loan_id, t.field, t.value, t.expected, :attempt_id
    FROM unnest(CAST(:loan_id AS bigint[]), CAST(:field AS text[]), CAST(:value AS text[]),
                CAST(:expected AS text[])) AS t(loan_id, field, value, expected)
    ON CONFLICT (partner_id, (coalesce(fineract_loan_id, -1)), field) DO UPDATE SET
        value = excluded.value, expected = excluded.expected, last_seen_at = now(),
        times_seen = b.times_seen + 1, last_poll_attempt_id = excluded.last_poll_attempt_id,
        resolved_at = NULL
    """
)

_RESOLVE_GONE = sa.text(
    """
    UPDATE lending.fineract_bad_records SET resolved_at = now()
    WHERE partner_id = :partner_id AND resolved_at IS NULL
      AND last_poll_attempt_id IS DISTINCT FROM :attempt_id
    """
)


def record_listing(
    conn: Connection,
    *,
    partner_id: str,
    attempt_id: int,
    total_reported: int,
    records_received: int,
    bad_records: Sequence[Any],
) -> None:
    """Store one successful listing's quality: its bad records (upserted; the ones this poll
    no longer saw are resolved) and the reported vs received totals on the attempt."""
    if bad_records:
        conn.execute(
            _UPSERT_BAD,
            {
                "partner_id": partner_id,
                "attempt_id": attempt_id,
                "loan_id": [bad.loan_id for bad in bad_records],
                "field": [bad.field for bad in bad_records],
                "value": [bad.value for bad in bad_records],
                "expected": [bad.expected for bad in bad_records],
            },
        )
    conn.execute(_RESOLVE_GONE, {"partner_id": partner_id, "attempt_id": attempt_id})
    conn.execute(
        sa.text(
            "UPDATE lending.poll_attempts SET total_reported = :total, "
            "records_received = :received, bad_records = :bad WHERE id = :id"
        ),
        {
            "total": total_reported,
            "received": records_received,
            "bad": len(bad_records),
            "id": attempt_id,
        },
    )


def open_bad_records(conn: Connection, limit: int = 50) -> list[sa.Row]:
    t = fineract_bad_records
    return conn.execute(
        sa.select(t)
        .where(t.c.resolved_at.is_(None))
        .order_by(t.c.partner_id, t.c.fineract_loan_id)
        .limit(limit)
    ).all()


def total_mismatches_since(conn: Connection, since: datetime) -> list[sa.Row]:
    """The latest attempt per partner since `since` whose reported total differs from its pages."""
    return conn.execute(
        sa.text(
            "SELECT DISTINCT ON (partner_id) partner_id, started_at, total_reported, "
            "records_received FROM lending.poll_attempts "
            "WHERE started_at >= :since AND ok AND total_reported IS NOT NULL "
            "AND total_reported <> records_received "
            "ORDER BY partner_id, started_at DESC"
        ),
        {"since": since},
    ).all()
