"""M-Pesa B2C attempts: who may submit, what was sent, and what M-Pesa has confirmed.

* Every submitter (the polling job's asset, the retry job, a UI "Materialize") holds one
  PostgreSQL advisory lock while it sends (`try_lock_submitter`), and claims its rows in one
  statement (`due_submissions`: `FOR UPDATE SKIP LOCKED`, the partner-wallet charge in the same
  statement). A claim belongs to the claimant's database session: a killed submitter's claims
  lapse the moment its connection is gone.
* `begin_attempt` commits the attempt (its own row in `disbursement_attempts`, the request
  `unknown`) before the B2C call. Only an acknowledgement makes it `submitted`.
* What M-Pesa confirms afterwards is applied by `db/disbursement_results.py`.
"""

from __future__ import annotations

import time
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
)

# pg_advisory_lock(int, int) keys: (workflow 1, M-Pesa B2C submission).
SUBMITTER_LOCK = (7001, 1)


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


def refused(conn: Connection, ocid: str, error_code: str | None) -> None:
    """Daraja refused the B2C request itself (validation): the attempt failed, nothing paid."""
    conn.execute(
        sa.update(disbursement_attempts)
        .where(disbursement_attempts.c.originator_conversation_id == ocid)
        .values(
            status="failed",
            result_code=error_code,
            resolved_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )
