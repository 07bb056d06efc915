"""M-Pesa B2C attempts: who may submit, what was sent, and what M-Pesa has confirmed.

* Every submitter (the polling job's asset, the retry job, a UI "Materialize") holds one
  PostgreSQL advisory lock while it sends (`try_lock_submitter`), and claims its rows in one
  statement (`due_submissions`: `FOR UPDATE SKIP LOCKED`, the partner-wallet charge in the same
  statement). A claim belongs to the claimant's database session: a killed submitter's claims
  lapse the moment its connection is gone.
* `begin_attempt` commits the attempt (its own row in `disbursement_attempts`, the request
  `unknown`) before the B2C call. Only an acknowledgement makes it `submitted`.
* Results: a callback only sets `result_hint_at` (a status query is then sent). The answer to
  that query is recognised by the ids of *its* acknowledgement and settles the request
  (`settle`), counts a not-found (`record_not_found`: the second one some time apart re-arms
  the same attempt), or flags it for review (`flag_for_review`).
"""

from __future__ import annotations

import time
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
    disbursement_attempts,
    disbursement_requests,
    disbursement_status_queries,
    refund_final_failures,
)

# pg_advisory_lock(int, int) keys: (workflow 1, M-Pesa B2C submission).
SUBMITTER_LOCK = (7001, 1)
OPEN = ("submitted", "unknown")


# --- who may submit ----------------------------------------------------------------------


def try_lock_submitter(conn: Connection, wait_seconds: float = 0.0) -> bool:
    """Take the session-level submitter lock on `conn`, waiting up to `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        taken = conn.execute(
            sa.text("SELECT pg_try_advisory_lock(:a, :b)"),
            {"a": SUBMITTER_LOCK[0], "b": SUBMITTER_LOCK[1]},
        ).scalar()
        conn.commit()
        if taken or time.monotonic() >= deadline:
            return bool(taken)
        time.sleep(0.2)


def unlock_submitter(conn: Connection) -> None:
    conn.execute(
        sa.text("SELECT pg_advisory_unlock(:a, :b)"),
        {"a": SUBMITTER_LOCK[0], "b": SUBMITTER_LOCK[1]},
    )
    conn.commit()


def has_due_submissions(conn: Connection, now: datetime) -> bool:
    return bool(
        conn.execute(
            sa.text(
                f"SELECT EXISTS (SELECT 1 FROM {T}disbursement_requests WHERE status = 'pending' "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= :now))"
            ),
            {"now": now},
        ).scalar()
    )


def release_claims(conn: Connection) -> int:
    """Give back this session's claims on rows it did not get to (an error mid-way)."""
    return conn.execute(
        sa.text(
            f"UPDATE {T}disbursement_requests SET claimed_by_pid = NULL, claimed_at = NULL "
            "WHERE claimed_by_pid = pg_backend_pid() AND status = 'pending'"
        )
    ).rowcount


@dataclass(frozen=True)
class Claim:
    request: OpenDisbursement
    claimant: int  # the backend pid of the claiming session
    wallet_short: bool  # the partner's wallet could not cover the charge: nothing was taken


_CLAIM = sa.text(
    f"""
    WITH due AS (
        SELECT d.id, d.partner_id, d.charge_minor FROM {T}disbursement_requests d
        WHERE d.status = 'pending' AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= :now)
          AND (d.claimed_by_pid IS NULL
               OR d.claimed_at < now() - make_interval(mins => :lease_minutes)
               OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = d.claimed_by_pid))
        ORDER BY d.id LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    ), wallets AS (
        SELECT p.id, p.wallet_balance_minor, p.disbursement_charge_minor FROM {T}partners p
        WHERE p.id IN (SELECT partner_id FROM due) FOR UPDATE
    ), needs AS (
        SELECT due.id, due.partner_id, w.disbursement_charge_minor AS charge,
               w.wallet_balance_minor AS wallet,
               sum(w.disbursement_charge_minor)
                   OVER (PARTITION BY due.partner_id ORDER BY due.id) AS running
        FROM due JOIN wallets w ON w.id = due.partner_id
        WHERE due.charge_minor = 0 AND w.disbursement_charge_minor > 0
    ), charged AS (
        SELECT id, partner_id, charge FROM needs WHERE running <= wallet
    ), debited AS (
        UPDATE {T}partners p SET wallet_balance_minor = p.wallet_balance_minor - t.total,
            updated_at = now()
        FROM (SELECT partner_id, sum(charge) AS total FROM charged GROUP BY partner_id) t
        WHERE p.id = t.partner_id
        RETURNING p.id
    )
    UPDATE {T}disbursement_requests d SET
        claimed_by_pid = pg_backend_pid(), claimed_at = now(),
        charge_minor = d.charge_minor + COALESCE(c.charge, 0), updated_at = now()
    FROM due LEFT JOIN charged c ON c.id = due.id, {T}loan_tracking lt
    WHERE d.id = due.id AND lt.id = d.loan_tracking_id
    RETURNING {_OPEN_COLUMNS}, d.claimed_by_pid AS claimant,
        (d.id IN (SELECT id FROM needs) AND c.id IS NULL) AS wallet_short
    """
)


def due_submissions(
    conn: Connection, now: datetime, limit: int = 500, lease_minutes: int = 60
) -> list[Claim]:
    """Claim the pending requests whose next attempt is due, in ONE statement that also takes
    each new attempt's disbursement charge from its partner's wallet. Rows another session
    holds (locked, or claimed by a live session) are skipped and charge nothing."""
    rows = conn.execute(_CLAIM, {"now": now, "limit": limit, "lease_minutes": lease_minutes})
    claims = []
    for row in rows:
        values = dict(row._mapping)
        claimant, short = values.pop("claimant"), values.pop("wallet_short")
        claims.append(Claim(OpenDisbursement(**values), claimant, bool(short)))
    return sorted(claims, key=lambda c: c.request.id)


# --- attempts ----------------------------------------------------------------------------


def begin_attempt(
    conn: Connection,
    claim: Claim,
    *,
    originator_conversation_id: str,
    phone: str,
    phone_raw: str | None,
    run_id: str | None,
) -> str:
    """Commit the attempt before the B2C call: the request becomes `unknown` (sent or not, only
    M-Pesa knows until it acknowledges). A request that already has an attempt id is a resend of
    that same attempt (allowed only after two not-found answers) and is recorded as one.
    Returns "started" or "not_claimed" (the claim lapsed and someone else took the row)."""
    request = claim.request
    resend = request.originator_conversation_id is not None
    d = disbursement_requests.c
    updated = conn.execute(
        sa.update(disbursement_requests)
        .where(d.id == request.id, d.status == "pending", d.claimed_by_pid == claim.claimant)
        .values(
            status="unknown",
            originator_conversation_id=originator_conversation_id,
            conversation_id=d.conversation_id if resend else None,
            attempts=d.attempts + (0 if resend else 1),
            attempt_started_at=sa.func.now(),
            submitted_at=None,
            phone=phone,
            phone_raw=sa.func.coalesce(phone_raw, d.phone_raw),
            claimed_by_pid=None,
            claimed_at=None,
            next_attempt_at=None,
            result_hint_at=None,
            status_query_conversation_id=None,
            status_query_originator_id=None,
            updated_at=sa.func.now(),
        )
    ).rowcount
    if not updated:
        return "not_claimed"
    a = disbursement_attempts.c
    if resend:
        conn.execute(
            sa.update(disbursement_attempts)
            .where(a.originator_conversation_id == originator_conversation_id)
            .values(
                resends=a.resends + 1,
                last_resent_at=sa.func.now(),
                not_found_count=0,
                first_not_found_at=None,
                updated_at=sa.func.now(),
            )
        )
    else:
        conn.execute(
            sa.insert(disbursement_attempts).values(
                request_id=request.id,
                attempt=request.attempts + 1,
                originator_conversation_id=originator_conversation_id,
            )
        )
    record_audits(
        conn,
        [
            {
                "actor": "loan_disbursements",
                "action": "disbursement.resent" if resend else "disbursement.attempt_started",
                "entity": "disbursement_request",
                "entity_id": request.id,
                "new_value": {
                    "originator_conversation_id": originator_conversation_id,
                    "attempt": request.attempts if resend else request.attempts + 1,
                    "amount_minor": request.amount_minor,
                    "phone": phone,
                    "charge_minor": request.charge_minor,
                },
                "reason": "M-Pesa twice reported the attempt not found" if resend else None,
                "run_id": run_id,
            }
        ],
    )
    return "started"


def record_acknowledgement(
    conn: Connection, request_id: int, ocid: str, conversation_id: str
) -> None:
    """The B2C was accepted: keep the ConversationID a later answer must carry. A request
    already settled meanwhile is not moved back."""
    conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id == request_id,
            disbursement_requests.c.status == "unknown",
            disbursement_requests.c.originator_conversation_id == ocid,
        )
        .values(
            status="submitted",
            conversation_id=conversation_id,
            submitted_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )
    conn.execute(
        sa.update(disbursement_attempts)
        .where(disbursement_attempts.c.originator_conversation_id == ocid)
        .values(
            conversation_id=conversation_id,
            acknowledged_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )


def note_unknown(conn: Connection, request_id: int, ocid: str, reason: str) -> None:
    """The B2C call ended without a usable acknowledgement: stays `unknown`, reason kept."""
    conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id == request_id,
            disbursement_requests.c.status == "unknown",
            disbursement_requests.c.originator_conversation_id == ocid,
        )
        .values(
            failure_reason=reason[:1000],
            submitted_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )


def attempt_ids(conn: Connection, request_id: int) -> list[str]:
    """Every OriginatorConversationID a request has used, oldest first."""
    return list(
        conn.execute(
            sa.select(disbursement_attempts.c.originator_conversation_id)
            .where(disbursement_attempts.c.request_id == request_id)
            .order_by(disbursement_attempts.c.attempt)
        ).scalars()
    )


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
