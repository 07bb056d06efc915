"""Pausing retailers whose credit breaks a guardrail, set-based and exactly once.

`breaching_retailers` finds ACTIVE retailers whose oldest unpaid charge is older than their
max_outstanding_days or whose outstanding exceeds their limit (the rule of
`domain.credit_guardrails`, in SQL). `pause_retailers`, in the caller's transaction:

1. locks those retailers' rows in id order (`FOR UPDATE`, still ACTIVE after the wait: a
   concurrent run that paused them first makes them drop out here);
2. reads their exposure again — a payment recorded meanwhile (it locks the retailer row too)
   is seen now — and the caller's decision function keeps those still breaching, with the
   reason text;
3. one statement pauses them, writes one audit entry per pause and one outbox row per pause,
   key `credit_paused:<retailer>:<business day>`.

Guardrails (04:00) and auto-pause (11:00) both use it: a retailer paused by one is no longer
ACTIVE for the other, so it is neither paused nor notified twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .exposure import EXPOSURE_CTE
from .messages import insert_outbox_sql, template_payload_sql


@dataclass(frozen=True)
class Exposure:
    retailer_id: str
    outstanding: int
    oldest_unpaid_on: date | None
    credit_limit: int
    max_outstanding_days: int
    currency: str


@dataclass(frozen=True)
class Pause:
    retailer_id: str
    reason: str
    breaches: tuple[str, ...]


BREACHING_SQL = f"""
WITH {EXPOSURE_CTE}
SELECT r.id AS retailer_id, e.outstanding, e.oldest_unpaid_on, a.credit_limit,
       a.max_outstanding_days, a.currency
FROM lending.retailers r
JOIN lending.credit_accounts a ON a.retailer_id = r.id
JOIN exposure e ON e.retailer_id = r.id
WHERE r.credit_status = 'ACTIVE'
  AND (e.outstanding > a.credit_limit
       OR (e.outstanding > 0
           AND CAST(:day AS date) - e.oldest_unpaid_on > a.max_outstanding_days))
  {{only}}
ORDER BY r.id
"""


def breaching_retailers(
    conn: Connection, *, business_date: date, tz: str, only: list[str] | None = None
) -> list[Exposure]:
    query = BREACHING_SQL.format(only="AND r.id = ANY(:only)" if only is not None else "")
    params: dict = {"day": business_date, "tz": tz}
    if only is not None:
        params["only"] = only
    return [Exposure(**row) for row in conn.execute(sa.text(query), params).mappings()]


def count_active(conn: Connection) -> int:
    return conn.execute(
        sa.text("SELECT count(*) FROM lending.retailers WHERE credit_status = 'ACTIVE'")
    ).scalar_one()


QUEUE_PAUSED = insert_outbox_sql(
    source="paused p",
    key="'credit_paused:' || p.id || ':' || CAST(:day AS text)",
    number="p.whatsapp_number",
    payload=template_payload_sql("content_sid", "p.name", "p.credit_pause_reason"),
)

PAUSE_SQL = f"""
WITH decided AS (
    SELECT * FROM jsonb_to_recordset(CAST(:decided AS jsonb))
        AS d(retailer_id text, reason text, breaches jsonb)
), paused AS (
    UPDATE lending.retailers r
    SET credit_status = 'PAUSED', credit_paused_at = now(), credit_pause_reason = d.reason,
        updated_at = now()
    FROM decided d
    WHERE r.id = d.retailer_id AND r.credit_status = 'ACTIVE'
    RETURNING r.id, r.name, r.whatsapp_number, r.credit_pause_reason, d.breaches
), audited AS (
    INSERT INTO lending.audit_log (actor, action, entity, entity_id, old_value, new_value,
                                   reason, run_id)
    SELECT :actor, :action, 'retailer', p.id, jsonb_build_object('credit_status', 'ACTIVE'),
           jsonb_build_object('credit_status', 'PAUSED', 'breaches', p.breaches,
                              'business_date', CAST(:day AS text)),
           p.credit_pause_reason, :run_id
    FROM paused p
    RETURNING entity_id
), queued AS (
    {QUEUE_PAUSED}
)
SELECT p.id AS retailer_id, p.credit_pause_reason AS reason,
       (SELECT count(*) FROM audited) AS audited, (SELECT count(*) FROM queued) AS queued
FROM paused p ORDER BY p.id
"""


def pause_retailers(
    conn: Connection,
    *,
    business_date: date,
    tz: str,
    decide: Callable[[Exposure], Pause | None],
    actor: str,
    action: str,
    run_id: str | None,
    content_sid: str,
) -> list[dict]:
    """Pause every retailer still breaching after its row is locked. Returns the pauses made
    now (retailer_id, reason). Call inside a transaction (engine.begin())."""
    candidates = [
        e.retailer_id for e in breaching_retailers(conn, business_date=business_date, tz=tz)
    ]
    if not candidates:
        return []
    locked = list(
        conn.execute(
            sa.text(
                "SELECT id FROM lending.retailers WHERE id = ANY(:ids) "
                "AND credit_status = 'ACTIVE' ORDER BY id FOR UPDATE"
            ),
            {"ids": candidates},
        ).scalars()
    )
    if not locked:
        return []
    decided = [
        pause
        for exposure in breaching_retailers(conn, business_date=business_date, tz=tz, only=locked)
        if (pause := decide(exposure)) is not None
    ]
    if not decided:
        return []
    rows = conn.execute(
        sa.text(PAUSE_SQL),
        {
            "decided": json.dumps(
                [
                    {"retailer_id": p.retailer_id, "reason": p.reason, "breaches": list(p.breaches)}
                    for p in decided
                ]
            ),
            "actor": actor,
            "action": action,
            "run_id": run_id,
            "day": business_date,
            "content_sid": content_sid,
        },
    ).mappings()
    return [{"retailer_id": r["retailer_id"], "reason": r["reason"]} for r in rows]
