"""Which Blnk balance belongs to whom (`blnk_accounts`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from .tables import (
    blnk_accounts,
)


def upsert_blnk_accounts(conn: Connection, rows: Sequence[dict[str, str]]) -> None:
    """Map owners to Blnk balance ids: rows of owner_type, owner_id, currency, balance_id."""
    if not rows:
        return
    stmt = insert(blnk_accounts).values(list(rows))
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                blnk_accounts.c.owner_type,
                blnk_accounts.c.owner_id,
                blnk_accounts.c.currency,
            ],
            set_={"balance_id": stmt.excluded.balance_id},
        )
    )
