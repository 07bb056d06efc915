"""The escrow release run (`auto_deduct.py` is the other run), shared by the daily asset and
the Launchpad jobs; without Dagster: an SQLAlchemy engine and a Blnk client in, a report out.

Both runs follow the same shape: load what is due (set-based SQL), set aside bad data with a reason
(audited, logged, never fatal), call Blnk once per transfer with a deterministic reference, and
record each outcome in the database transaction that holds the escrow's (or repayment's) row
lock across the call, so a crash loses at most the record of one transfer — which the next run
recovers by reference instead of moving the money again — and a concurrent run skips what is
locked (db/escrow/settle.py).

Blnk's answer is never taken at face value: a QUEUED answer is read back through its `<ref>_q`
outcome (still queued: nothing is recorded, the next run asks again), and the transfer found
under our reference must match our intent in amount, currency, source and destination. One that
does not is an alert (audit entry, failed run), not an update.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime

import sqlalchemy as sa

from ...db.escrow.releases import ReleaseCandidate, record_release, release_candidates
from ...db.escrow.settle import (
    lock_held_escrow,
    record_ledger_mismatch,
)
from ...domain.currency import minor_units_per_major
from ...partners.blnk import BlnkClient, BlnkError
from .report import Failed, RunReport, Skipped, audit_skips, outcome_problem

__all__ = ["release_escrows"]


def release_escrows(
    engine: sa.Engine,
    blnk: BlnkClient,
    *,
    business_date: date,
    actor: str,
    reason: str,
    run_id: str | None,
    dry_run: bool,
    log: logging.Logger,
    cutoff: datetime | None = None,
    escrow_id: int | None = None,
) -> RunReport:
    """Release held escrows due at `cutoff` (or the one escrow `escrow_id`, due or not) from
    the escrow pool to each wholesaler's balance, reference `escrow-release:<id>`."""
    started = time.monotonic()
    report = RunReport(business_date=business_date, dry_run=dry_run)
    with engine.begin() as conn:
        candidates = release_candidates(conn, cutoff=cutoff, escrow_id=escrow_id)
    ready: list[ReleaseCandidate] = []
    for candidate in candidates:
        if candidate.status != "held":
            report.skipped.append(
                Skipped(str(candidate.escrow_id), f"not_held: {candidate.status}")
            )
        elif candidate.problem is not None:
            report.skipped.append(Skipped(str(candidate.escrow_id), candidate.problem))
        else:
            ready.append(candidate)
    if dry_run:
        report.planned = [_release_row(candidate, None, False) for candidate in ready]
        report.duration_seconds = time.monotonic() - started
        return report
    audit_skips(
        engine,
        report.skipped,
        entity="escrow",
        action="escrow.release_skipped",
        actor=actor,
        run_id=run_id,
        business_date=business_date,
        log=log,
    )
    for candidate in ready:
        _release_one(engine, blnk, candidate, report, actor, reason, run_id, log)
    report.duration_seconds = time.monotonic() - started
    log.info(
        "escrow release %s: %d released %s, %d skipped, %d failed",
        business_date,
        len(report.moved),
        report.amount_by_currency,
        len(report.skipped),
        len(report.failed),
    )
    return report


def _release_row(candidate: ReleaseCandidate, transaction_id: str | None, recovered: bool) -> dict:
    return {
        "escrow_id": candidate.escrow_id,
        "order_id": candidate.order_id,
        "wholesaler_id": candidate.wholesaler_id,
        "amount": candidate.amount,
        "currency": candidate.currency,
        "ledger_reference": candidate.reference,
        "ledger_transaction_id": transaction_id,
        "recovered": recovered,
    }


def _release_one(
    engine: sa.Engine,
    blnk: BlnkClient,
    candidate: ReleaseCandidate,
    report: RunReport,
    actor: str,
    reason: str,
    run_id: str | None,
    log: logging.Logger,
) -> None:
    escrow = str(candidate.escrow_id)
    source, destination = candidate.source_balance_id, candidate.destination_balance_id
    assert source is not None and destination is not None  # candidate.problem is None
    # The escrow row stays locked from the post to the record: a concurrent run skips it, and a
    # crash rolls back to `held`, which the next run recovers by reference.
    with engine.begin() as conn:
        if not lock_held_escrow(conn, candidate.escrow_id):
            report.skipped.append(Skipped(escrow, "not_held: released or being released"))
            return
        try:
            outcome = blnk.transfer(
                reference=candidate.reference,
                source=source,
                destination=destination,
                precise_amount=candidate.amount,
                currency=candidate.currency,
                precision=minor_units_per_major(candidate.currency),
                description=(
                    f"Escrow {candidate.escrow_id} release to wholesaler "
                    f"{candidate.wholesaler_id} (order {candidate.order_id})"
                ),
                meta_data={
                    "escrow_id": candidate.escrow_id,
                    "order_id": candidate.order_id,
                    "wholesaler_id": candidate.wholesaler_id,
                },
            )
        except BlnkError as exc:
            log.error("escrow %s release failed: %s", escrow, exc)
            report.failed.append(Failed(escrow, str(exc), exc.retryable))
            return
        if outcome.awaiting:
            log.warning("escrow %s: %s is queued in the ledger; left held", escrow,
                        outcome.reference)  # fmt: skip
            report.awaiting.append(escrow)
            return
        txn = outcome.transaction
        assert txn is not None
        problem = outcome_problem(
            outcome,
            amount=candidate.amount,
            currency=candidate.currency,
            source=source,
            destination=destination,
        )
        if problem is not None:
            error = (
                f"ledger transaction {txn.transaction_id} for {candidate.reference}: {problem}"
                + (f" ({txn.rejection_reason})" if txn.rejection_reason else "")
                + "; escrow left held for investigation"
            )
            log.error("escrow %s: %s", escrow, error)
            report.failed.append(Failed(escrow, error, retryable=False))
            if txn.status != "REJECTED":  # a refusal moved nothing; anything else is an incident
                record_ledger_mismatch(
                    conn,
                    action="escrow.ledger_mismatch",
                    entity="escrow",
                    entity_id=escrow,
                    reference=candidate.reference,
                    transaction_id=txn.transaction_id,
                    problem=problem,
                    intent=_release_row(candidate, None, False),
                    actor=actor,
                    run_id=run_id,
                )
            return
        record_release(
            conn,
            candidate,
            business_date=report.business_date,
            transaction_id=txn.transaction_id,
            recovered=outcome.recovered,
            actor=actor,
            reason=reason,
            run_id=run_id,
        )
    if outcome.recovered:
        log.warning(
            "escrow %s was already released in the ledger (%s); recorded now",
            escrow,
            txn.transaction_id,
        )
    report.moved.append(_release_row(candidate, txn.transaction_id, outcome.recovered))
