"""Audit entries, written in the same transaction as the change they describe."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .common import audit_log


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON with `str` for Decimals, dates and ids, so JSONB accepts it."""
    return None if value is None else json.loads(json.dumps(value, default=str))


def record_audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    old_value: Any = None,
    new_value: Any = None,
    reason: str | None = None,
    run_id: str | None = None,
) -> None:
    """Write one audit entry. Call it on the connection of the transaction making the change."""
    conn.execute(
        sa.insert(audit_log).values(
            actor=actor,
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            old_value=_jsonable(old_value),
            new_value=_jsonable(new_value),
            reason=reason,
            run_id=run_id,
        )
    )


def record_audits(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Write many audit entries in one statement (set-based workflows)."""
    if not entries:
        return
    rows = [
        {
            "actor": e["actor"],
            "action": e["action"],
            "entity": e["entity"],
            "entity_id": str(e["entity_id"]),
            "old_value": _jsonable(e.get("old_value")),
            "new_value": _jsonable(e.get("new_value")),
            "reason": e.get("reason"),
            "run_id": e.get("run_id"),
        }
        for e in entries
    ]
    conn.execute(sa.insert(audit_log), rows)
