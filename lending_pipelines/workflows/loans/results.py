"""Stored M-Pesa callbacks applied to disbursement requests — as hints, never as proof.

Anyone holding the callback URL can post a result. So:

* a B2C result callback (matched by an attempt's OriginatorConversationID) only marks the
  request for a transaction-status query (`result_hint_at`); a callback whose ConversationID
  differs from the one Daraja acknowledged is also reported;
* the answer to a status query is recognised by the ConversationID *and* OriginatorConversationID
  of that query's own acknowledgement (which only Daraja and we know), then judged by
  `domain.disbursement.judge_status_answer`: our attempt id, our B2C ConversationID, our amount
  and our borrower's phone must all match. A match settles the request; a mismatch holds it for
  a person and alerts; a not-found is counted (the second one some time apart re-arms the same
  attempt); a failed query (e.g. 2001) proves nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from ...db import disbursement_results as results_db
from ...db import inbound
from ...domain.disbursement import judge_status_answer
from ...partners.mpesa import MpesaPayloadError, MpesaResult, parse_result_callback


@dataclass(frozen=True)
class CallbackReport:
    applied: Counter[str]
    ignored: int
    errors: dict[int, str]
    # Needs a person: a forged-looking callback, a mismatching answer, an unknown payment.
    alarming: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    settlements: list[results_db.Settlement] = field(default_factory=list)
    not_found: list[tuple[int, str]] = field(default_factory=list)
    query_errors: list[tuple[int, str]] = field(default_factory=list)
    review: list[tuple[int, str]] = field(default_factory=list)
    hints: list[int] = field(default_factory=list)


def _status_answer(plan: _Plan, target: sa.Row, result: MpesaResult) -> str:
    """Plan the effect of an authentic status-query answer; returns the verdict's kind."""
    verdict = judge_status_answer(
        result.status_answer(),
        originator_conversation_id=target.queried_ocid,
        conversation_id=target.conversation_id,
        amount_kes=target.amount_minor // 100,
        phone=target.phone,
    )
    if verdict.kind in ("succeeded", "failed"):
        plan.settlements.append(
            results_db.Settlement(
                request_id=target.id,
                originator_conversation_id=target.queried_ocid,
                status=verdict.kind,
                mpesa_transaction_id=verdict.receipt,
                result_code=verdict.result_code,
                result_desc=f"status query: {result.transaction_status}",
                failure_reason=verdict.reason or None,
                retryable=verdict.retryable,
            )
        )
    elif verdict.kind == "not_found":
        plan.not_found.append((target.id, target.queried_ocid))
    elif verdict.kind == "query_failed":
        plan.query_errors.append((target.id, verdict.reason))
    elif verdict.kind == "mismatch":
        plan.review.append(
            (
                target.id,
                f"M-Pesa's status answer for disbursement request {target.id} "
                f"({target.queried_ocid}) does not match: {verdict.reason}",
            )
        )
    return verdict.kind


def apply_callbacks(
    engine: sa.Engine, not_found_gap_minutes: int, *, run_id: str | None = None, limit: int = 500
) -> CallbackReport:
    """Apply stored M-Pesa callbacks in one transaction: the events stay locked until their
    effect is committed, so each applies exactly once."""
    applied: Counter[str] = Counter()
    processed: dict[int, str | None] = {}
    alarming: list[str] = []
    plan = _Plan()
    with engine.begin() as conn:
        parsed: list[tuple[int, MpesaResult]] = []
        for event in inbound.unprocessed_events(conn, "mpesa", limit=limit):
            processed[event.id] = None
            if (event.event_type or "").startswith("mpesa.timeout"):
                continue  # QueueTimeOut notice: reconciliation will ask
            try:
                parsed.append((event.id, parse_result_callback(event.payload)))
            except MpesaPayloadError as exc:
                processed[event.id] = str(exc)
        by_query = {
            t.query_conversation_id: t
            for t in results_db.queries_answered(conn, [r.conversation_id for _, r in parsed])
        }
        by_ocid = {
            t.attempt_ocid: t
            for t in results_db.attempts_named(
                conn, [r.originator_conversation_id for _, r in parsed]
            )
        }
        answered: list[tuple[str, str]] = []
        for event_id, result in parsed:
            target = by_query.get(result.conversation_id)
            if target is not None:
                if target.query_originator_id != result.originator_conversation_id:
                    processed[event_id] = (
                        f"status answer with ConversationID {result.conversation_id!r} carries "
                        f"OriginatorConversationID {result.originator_conversation_id!r}, not "
                        "the one our query was acknowledged with: not trusted"
                    )
                    alarming.append(processed[event_id])
                    continue
                current = target.queried_ocid == target.originator_conversation_id
                if target.status in results_db.OPEN and current and not target.needs_review:
                    kind = _status_answer(plan, target, result)
                    applied[f"answer_{kind}"] += 1
                    answered.append((result.conversation_id, kind))
                else:
                    answered.append((result.conversation_id, f"ignored: request {target.status}"))
                continue
            target = by_ocid.get(result.originator_conversation_id)
            if target is None:
                processed[event_id] = (
                    "no disbursement request for OriginatorConversationID "
                    f"{result.originator_conversation_id!r}"
                )
                if result.succeeded:
                    alarming.append(
                        f"M-Pesa reports payment {result.receipt} for unknown "
                        f"OriginatorConversationID {result.originator_conversation_id!r}"
                    )
                continue
            current = target.attempt_ocid == target.originator_conversation_id
            if target.status in results_db.OPEN and current:
                if target.conversation_id and result.conversation_id != target.conversation_id:
                    alarming.append(
                        f"an M-Pesa callback for disbursement request {target.id} carries "
                        f"ConversationID {result.conversation_id!r}, not the acknowledged "
                        f"{target.conversation_id!r}: not trusted, confirming with M-Pesa"
                    )
                plan.hints.append(target.id)
            elif result.succeeded and target.status == "failed":
                alarming.append(
                    f"M-Pesa reports payment {result.receipt} for disbursement request "
                    f"{target.id}, which is recorded as failed"
                )
        for row in results_db.settle(conn, plan.settlements, run_id=run_id):
            applied[row.status] += 1
        resent = results_db.record_not_found(
            conn, plan.not_found, not_found_gap_minutes, run_id=run_id
        )
        applied["resend_scheduled"] += len(resent)
        results_db.record_query_errors(conn, plan.query_errors)
        flagged = results_db.flag_for_review(conn, plan.review, run_id=run_id)
        alarming.extend(reason for _, reason in flagged)
        applied["hinted"] += results_db.hint(conn, sorted(set(plan.hints)))
        results_db.mark_answered(conn, answered)
        inbound.mark_outcomes(conn, processed)
    errors = {event_id: error for event_id, error in processed.items() if error}
    effective = sum(applied.values())
    return CallbackReport(
        applied=+applied,
        ignored=max(len(processed) - len(errors) - effective, 0),
        errors=errors,
        alarming=alarming,
    )
