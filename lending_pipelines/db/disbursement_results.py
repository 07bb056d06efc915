"""What M-Pesa confirms about B2C attempts: transaction-status queries and their answers.

A callback only sets `result_hint_at` (a status query is then sent). The answer to that query
is recognised by the ids of *its* acknowledgement (`disbursement_status_queries`) and settles
the request (`settle`), counts a not-found (`record_not_found`: the second one some time apart
re-arms the same attempt), records a failed query (`record_query_errors`) or holds the request
for a person (`flag_for_review`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .audit import record_audits
from .loans import (
    _OPEN_COLUMNS,
    OpenDisbursement,
    T,
    disbursement_requests,
    disbursement_status_queries,
    refund_final_failures,
)

OPEN = ("submitted", "unknown")


# --- status queries ----------------------------------------------------------------------


def due_reconciliations(
    conn: Connection, older_than: datetime, *, hinted_only: bool = False, limit: int = 500
) -> list[OpenDisbursement]:
    """Open requests to ask M-Pesa about: those a callback hinted at since the last query, and
    (unless `hinted_only`) those without an answer since `older_than`. Requests waiting for a
    person (`needs_review`) are left alone."""
    window = "" if hinted_only else (
        " OR COALESCE(d.last_status_query_at, d.submitted_at, d.attempt_started_at)"
        " <= :older_than"
    )  # fmt: skip
    return [
        OpenDisbursement(**row._mapping)
        for row in conn.execute(
            sa.text(
                f"SELECT {_OPEN_COLUMNS} FROM {T}disbursement_requests d "
                f"JOIN {T}loan_tracking lt ON lt.id = d.loan_tracking_id "
                "WHERE d.status IN ('submitted', 'unknown') AND d.needs_review IS NULL AND ("
                "d.result_hint_at > COALESCE(d.last_status_query_at, '-infinity')"
                f"{window}) ORDER BY d.id LIMIT :limit"
            ),
            {"older_than": older_than, "limit": limit},
        )
    ]


def mark_status_queried(
    conn: Connection,
    request: OpenDisbursement,
    *,
    query_conversation_id: str | None,
    query_originator_id: str | None,
    error: str | None = None,
) -> None:
    """Keep the ids of the query's acknowledgement: only an answer carrying both is ours. A
    query that could not be sent records the error and is asked again later."""
    d = disbursement_requests.c
    values = {
        "status_queries": d.status_queries + 1,
        "last_status_query_at": sa.func.now(),
        "last_status_query_error": error[:1000] if error else None,
        "updated_at": sa.func.now(),
    }
    if query_conversation_id is not None:
        values["status_query_conversation_id"] = query_conversation_id
        values["status_query_originator_id"] = query_originator_id
        conn.execute(
            sa.insert(disbursement_status_queries).values(
                request_id=request.id,
                originator_conversation_id=request.originator_conversation_id,
                query_conversation_id=query_conversation_id,
                query_originator_id=query_originator_id,
            )
        )
    conn.execute(sa.update(disbursement_requests).where(d.id == request.id).values(**values))


_TARGET_COLUMNS = (
    "d.id, d.status, d.partner_id, d.originator_conversation_id, d.conversation_id, "
    "d.amount_minor, d.phone, d.needs_review"
)


def queries_answered(conn: Connection, query_conversation_ids: Sequence[str]) -> list[sa.Row]:
    """Our status queries by the ConversationID of their acknowledgement, with the request they
    asked about and the attempt id they asked for (`queried_ocid`)."""
    return list(
        conn.execute(
            sa.text(
                f"SELECT {_TARGET_COLUMNS}, q.query_conversation_id, q.query_originator_id, "
                "q.originator_conversation_id AS queried_ocid "
                f"FROM {T}disbursement_status_queries q "
                f"JOIN {T}disbursement_requests d ON d.id = q.request_id "
                "WHERE q.query_conversation_id = ANY(CAST(:queries AS text[]))"
            ),
            {"queries": list(query_conversation_ids)},
        )
    )


def attempts_named(conn: Connection, ocids: Sequence[str]) -> list[sa.Row]:
    """The requests whose attempts (any, not only the current one) carry these ids."""
    return list(
        conn.execute(
            sa.text(
                f"SELECT {_TARGET_COLUMNS}, a.originator_conversation_id AS attempt_ocid "
                f"FROM {T}disbursement_attempts a "
                f"JOIN {T}disbursement_requests d ON d.id = a.request_id "
                "WHERE a.originator_conversation_id = ANY(CAST(:ocids AS text[]))"
            ),
            {"ocids": list(ocids)},
        )
    )


def mark_answered(conn: Connection, verdicts: Sequence[tuple[str, str]]) -> None:
    """(query ConversationID, verdict) of each answer received, for the record."""
    if verdicts:
        conn.execute(
            sa.text(
                f"UPDATE {T}disbursement_status_queries q SET answered_at = now(), "
                "verdict = v.verdict FROM unnest(CAST(:query AS text[]), "
                "CAST(:verdict AS text[])) AS v(query, verdict) "
                "WHERE q.query_conversation_id = v.query"
            ),
            {"query": [q for q, _ in verdicts], "verdict": [v[:1000] for _, v in verdicts]},
        )


def hint(conn: Connection, request_ids: Sequence[int]) -> int:
    """A callback named these open requests: ask M-Pesa about them on the next reconciliation."""
    if not request_ids:
        return 0
    return conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id.in_(list(request_ids)),
            disbursement_requests.c.status.in_(OPEN),
        )
        .values(result_hint_at=sa.func.now(), updated_at=sa.func.now())
    ).rowcount


@dataclass(frozen=True)
class Settlement:
    """A confirmed outcome: the status query (`query_conversation_id`) found the attempt."""

    request_id: int
    originator_conversation_id: str  # the attempt the query found
    status: str  # succeeded | failed
    mpesa_transaction_id: str | None = None
    result_code: str | None = None
    result_desc: str | None = None
    failure_reason: str | None = None
    retryable: bool = False


_SETTLE = sa.text(
    f"""
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:id AS bigint[]), CAST(:ocid AS text[]), CAST(:status AS text[]),
            CAST(:txn AS text[]), CAST(:code AS text[]), CAST(:description AS text[]),
            CAST(:reason AS text[]), CAST(:retryable AS boolean[])
        ) AS v(id, ocid, status, txn, code, description, reason, retryable)
    ), settled AS (
        UPDATE {T}disbursement_requests d SET
            status = v.status,
            mpesa_transaction_id = COALESCE(v.txn, d.mpesa_transaction_id),
            result_code = COALESCE(v.code, d.result_code),
            result_desc = COALESCE(v.description, d.result_desc),
            failure_reason = CASE WHEN v.status = 'failed' THEN v.reason END,
            retryable = v.status = 'failed' AND v.retryable,
            next_attempt_at = NULL,
            resolved_at = now(),
            confirmed_at = now(),
            updated_at = now()
        FROM v
        WHERE d.id = v.id AND d.status IN ('submitted', 'unknown')
          AND d.originator_conversation_id = v.ocid
        RETURNING d.id, d.status, d.originator_conversation_id, d.mpesa_transaction_id,
                  d.result_code, d.failure_reason
    ), attempts AS (
        UPDATE {T}disbursement_attempts a SET status = s.status, resolved_at = now(),
            mpesa_transaction_id = s.mpesa_transaction_id, result_code = s.result_code,
            updated_at = now()
        FROM settled s WHERE a.originator_conversation_id = s.originator_conversation_id
    )
    SELECT * FROM settled
    """
)


def settle(
    conn: Connection, settlements: Sequence[Settlement], run_id: str | None = None
) -> list[sa.Row]:
    """Apply confirmed outcomes in one statement; only an open request whose current attempt is
    the one the query found changes. Final failures get their charge refunded."""
    if not settlements:
        return []
    rows = list(
        conn.execute(
            _SETTLE,
            {
                "id": [s.request_id for s in settlements],
                "ocid": [s.originator_conversation_id for s in settlements],
                "status": [s.status for s in settlements],
                "txn": [s.mpesa_transaction_id for s in settlements],
                "code": [s.result_code for s in settlements],
                "description": [s.result_desc for s in settlements],
                "reason": [s.failure_reason for s in settlements],
                "retryable": [s.retryable for s in settlements],
            },
        )
    )
    record_audits(
        conn,
        [
            {
                "actor": "mpesa_results",
                "action": f"disbursement.{row.status}",
                "entity": "disbursement_request",
                "entity_id": row.id,
                "new_value": {
                    "status": row.status,
                    "originator_conversation_id": row.originator_conversation_id,
                    "mpesa_transaction_id": row.mpesa_transaction_id,
                    "confirmed_by": "transaction status query",
                },
                "reason": row.failure_reason if row.status == "failed" else None,
                "run_id": run_id,
            }
            for row in rows
        ],
    )
    refund_final_failures(conn)
    return rows


_NOT_FOUND = sa.text(
    f"""
    WITH v AS (
        SELECT * FROM unnest(CAST(:id AS bigint[]), CAST(:ocid AS text[])) AS v(id, ocid)
    ), counted AS (
        UPDATE {T}disbursement_attempts a SET
            not_found_count = a.not_found_count + 1,
            first_not_found_at = COALESCE(a.first_not_found_at, now()),
            last_not_found_at = now(),
            updated_at = now()
        FROM v JOIN {T}disbursement_requests d ON d.id = v.id
        WHERE d.status IN ('submitted', 'unknown') AND d.originator_conversation_id = v.ocid
          AND a.originator_conversation_id = v.ocid
        RETURNING a.request_id, a.not_found_count, a.first_not_found_at
    )
    UPDATE {T}disbursement_requests d SET
        status = 'pending', next_attempt_at = NULL, result_hint_at = NULL,
        failure_reason = 'M-Pesa reported the attempt not found twice, '
            || (now() - c.first_not_found_at)::text || ' apart: resend the same attempt',
        updated_at = now()
    FROM counted c
    WHERE d.id = c.request_id AND c.not_found_count >= 2
      AND c.first_not_found_at <= now() - make_interval(mins => :gap_minutes)
    RETURNING d.id, d.originator_conversation_id
    """
)


def record_not_found(
    conn: Connection,
    answers: Sequence[tuple[int, str]],
    gap_minutes: int,
    run_id: str | None = None,
) -> list[sa.Row]:
    """Count a definite not-found answer (request id, attempt id asked for). When M-Pesa said
    so at least twice, the first time `gap_minutes` ago or more, the request goes back to
    `pending` keeping its attempt id: it is sent again with that same id. Returns those rows."""
    if not answers:
        return []
    rows = list(
        conn.execute(
            _NOT_FOUND,
            {
                "id": [request_id for request_id, _ in answers],
                "ocid": [ocid for _, ocid in answers],
                "gap_minutes": gap_minutes,
            },
        )
    )
    record_audits(
        conn,
        [
            {
                "actor": "mpesa_results",
                "action": "disbursement.resend_scheduled",
                "entity": "disbursement_request",
                "entity_id": row.id,
                "new_value": {"originator_conversation_id": row.originator_conversation_id},
                "reason": "M-Pesa reported the attempt not found twice",
                "run_id": run_id,
            }
            for row in rows
        ],
    )
    return rows


def record_query_errors(conn: Connection, errors: Sequence[tuple[int, str]]) -> None:
    """A status query answered with an error (e.g. 2001): proves nothing, asked again later."""
    if not errors:
        return
    conn.execute(
        sa.text(
            f"UPDATE {T}disbursement_requests d SET last_status_query_error = v.error, "
            "updated_at = now() FROM unnest(CAST(:id AS bigint[]), CAST(:error AS text[])) "
            "AS v(id, error) WHERE d.id = v.id"
        ),
        {"id": [i for i, _ in errors], "error": [e[:1000] for _, e in errors]},
    )


def flag_for_review(
    conn: Connection, problems: Sequence[tuple[int, str]], run_id: str | None = None
) -> list[tuple[int, str]]:
    """Hold requests for a person (no status change, no more queries, nothing recorded in
    Fineract). Returns the ones flagged now: one alert per incident, not per evaluation."""
    if not problems:
        return []
    first = dict(reversed(list(problems)))  # one reason per request: the first one seen
    flagged = [
        (row.id, row.needs_review)
        for row in conn.execute(
            sa.text(
                f"UPDATE {T}disbursement_requests d SET needs_review = v.reason, "
                "updated_at = now() FROM unnest(CAST(:id AS bigint[]), CAST(:reason AS text[])) "
                "AS v(id, reason) WHERE d.id = v.id AND d.needs_review IS NULL "
                "RETURNING d.id, d.needs_review"
            ),
            {"id": list(first), "reason": [r[:1000] for r in first.values()]},
        )
    ]
    record_audits(
        conn,
        [
            {
                "actor": "loan_disbursements",
                "action": "disbursement.needs_review",
                "entity": "disbursement_request",
                "entity_id": request_id,
                "reason": reason,
                "run_id": run_id,
            }
            for request_id, reason in flagged
        ],
    )
    return flagged
