"""The escrow release and auto-deduct runs, shared by the daily assets and the Launchpad jobs.

Both follow the same shape: load what is due (set-based SQL), set aside bad data with a reason
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

from ..db.escrow import (
    ReleaseCandidate,
    Repayment,
    apply_repayment,
    auto_deduct_candidates,
    auto_deduct_reference,
    compute_deductions,
    fail_repayment,
    record_release,
    release_candidates,
)
from ..db.escrow.settle import (
    create_guarded_intents,
    lock_held_escrow,
    lock_pending_repayment,
    pending_repayments,
    record_ledger_mismatch,
)
from ..domain.currency import minor_units_per_major
from ..domain.deduction import percentage_basis_points
from ..partners.blnk import BlnkClient, BlnkError
from ..resources.database import DatabaseResource
from ..settings import Settings
from .escrow_report import Failed, RunReport, Skipped, audit_skips, outcome_problem

__all__ = ["Failed", "RunReport", "Skipped", "release_escrows", "run_auto_deduct"]

# --- escrow release ---------------------------------------------------------------------------


def release_escrows(
    database: DatabaseResource,
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
    with database.begin() as conn:
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
        database,
        report.skipped,
        entity="escrow",
        action="escrow.release_skipped",
        actor=actor,
        run_id=run_id,
        business_date=business_date,
        log=log,
    )
    for candidate in ready:
        _release_one(database, blnk, candidate, report, actor, reason, run_id, log)
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
    database: DatabaseResource,
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
    with database.begin() as conn:
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


# --- auto-deduct ----------------------------------------------------------------------------------


def run_auto_deduct(
    database: DatabaseResource,
    blnk: BlnkClient,
    settings: Settings,
    *,
    business_date: date,
    actor: str,
    run_id: str | None,
    dry_run: bool,
    log: logging.Logger,
    reason: str | None = None,
) -> RunReport:
    """Deduct today's share of debt from every eligible retailer's wallet into the repayment
    pool, reference `auto-deduct:<retailer>:<business date>`.

    First every pending repayment, whatever its date (a crash after the post, a post still in
    Blnk's queue), is settled by reference with its original amount, so today's deductions are
    computed from the debts as the ledger left them. `reason` (a Launchpad operator's) goes into
    the audit entry written with each debt reduction.
    """
    started = time.monotonic()
    percentage_basis_points(settings.auto_deduct_percent)  # a bad default fails before any work
    report = RunReport(business_date=business_date, dry_run=dry_run)
    if not dry_run:
        with database.begin() as conn:
            leftover = pending_repayments(conn)
        if leftover:
            log.warning("auto-deduct %s: settling %d pending repayment(s) first (%s)",
                        business_date, len(leftover),
                        sorted({str(r.business_date) for r in leftover}))  # fmt: skip
        for repayment in leftover:
            _deduct_one(database, blnk, repayment, report, actor, run_id, log, reason)
    with database.begin() as conn:
        candidates = auto_deduct_candidates(conn, business_date)
    readings: list[tuple[str, int]] = []
    by_retailer = {}
    for candidate in candidates:
        problem = candidate.problem(settings.wallet_currency)
        if problem is not None:
            report.skipped.append(Skipped(candidate.retailer_id, problem))
            continue
        try:
            wallet = blnk.get_balance(str(candidate.wallet_balance_id))
        except BlnkError as exc:
            if exc.retryable:  # an outage is a failure to retry, not a reason to skip quietly
                error = f"wallet {candidate.wallet_balance_id} unreadable: {exc}"
                report.failed.append(Failed(candidate.retailer_id, error, retryable=True))
            else:
                reason_ = f"wallet_not_in_ledger: {candidate.wallet_balance_id}: {exc}"
                report.skipped.append(Skipped(candidate.retailer_id, reason_))
            continue
        if wallet.currency != candidate.currency:
            report.skipped.append(
                Skipped(
                    candidate.retailer_id,
                    f"wallet_currency_mismatch: wallet {wallet.balance_id} is {wallet.currency}, "
                    f"debt is {candidate.currency}",
                )
            )
            continue
        # Funds held by inflight debits cannot be deducted: use what is available.
        readings.append((candidate.retailer_id, wallet.available))
        by_retailer[candidate.retailer_id] = candidate

    with database.begin() as conn:
        computed = compute_deductions(
            conn,
            settings.wallet_currency,
            readings,
            default_percentage=settings.auto_deduct_percent,
            default_minimum=settings.min_wallet_balance_minor,
        )
    intents = []
    for row in computed:
        if row.amount == 0:
            report.skipped.append(Skipped(row.retailer_id, str(row.skip_reason)))
            continue
        candidate = by_retailer[row.retailer_id]
        intents.append(
            {
                "retailer_id": row.retailer_id,
                "business_date": business_date,
                "currency": settings.wallet_currency,
                "amount": row.amount,
                "debt_before": row.debt,
                "wallet_balance_before": row.wallet_balance,
                "limited_by": str(row.limited_by),
                "source_balance_id": candidate.wallet_balance_id,
                "destination_balance_id": candidate.pool_balance_id,
                "ledger_reference": auto_deduct_reference(row.retailer_id, business_date),
                "run_id": run_id,
                "debt_version": candidate.debt_version,
            }
        )
    if dry_run:
        report.planned = [
            {k: v for k, v in intent.items() if k != "debt_version"} for intent in intents
        ]
        report.duration_seconds = time.monotonic() - started
        return report
    with database.begin() as conn:
        created, refused = create_guarded_intents(conn, intents, business_date)
    report.skipped.extend(Skipped(retailer, why) for retailer, why in refused.items())

    audit_skips(
        database,
        report.skipped,
        entity="retailer",
        action="auto_deduct.skipped",
        actor=actor,
        run_id=run_id,
        business_date=business_date,
        log=log,
    )
    for repayment in created:
        _deduct_one(database, blnk, repayment, report, actor, run_id, log, reason)
    report.duration_seconds = time.monotonic() - started
    log.info(
        "auto-deduct %s: %d deducted %s, %d skipped %s, %d awaiting the ledger, %d failed",
        business_date,
        len(report.moved),
        report.amount_by_currency,
        len(report.skipped),
        report.skipped_by_reason,
        len(report.awaiting),
        len(report.failed),
    )
    return report


def _deduct_one(
    database: DatabaseResource,
    blnk: BlnkClient,
    intent: Repayment,
    report: RunReport,
    actor: str,
    run_id: str | None,
    log: logging.Logger,
    reason: str | None,
) -> None:
    """Post one pending repayment (its stored amount and reference) and record the outcome,
    holding the repayment's row lock from the post to the record."""
    retailer = intent.retailer_id
    with database.begin() as conn:
        repayment = lock_pending_repayment(conn, intent.id)
        if repayment is None:  # settled meanwhile, or another run is settling it
            return
        try:
            outcome = blnk.transfer(
                reference=repayment.ledger_reference,
                source=repayment.source_balance_id,
                destination=repayment.destination_balance_id,
                precise_amount=repayment.amount,
                currency=repayment.currency,
                precision=minor_units_per_major(repayment.currency),
                description=f"Auto-deduct {repayment.business_date} for retailer {retailer}",
                meta_data={
                    "retailer_id": retailer,
                    "business_date": repayment.business_date.isoformat(),
                    "limited_by": repayment.limited_by,
                },
            )
        except BlnkError as exc:
            log.error("auto-deduct for retailer %s failed: %s", retailer, exc)
            report.failed.append(Failed(retailer, str(exc), exc.retryable))
            if not exc.retryable:  # retryable: the intent stays pending for the next attempt
                fail_repayment(conn, repayment, error=str(exc), actor=actor, run_id=run_id)
            return
        if outcome.awaiting:
            log.warning("auto-deduct for retailer %s: %s is queued in the ledger; left pending",
                        retailer, repayment.ledger_reference)  # fmt: skip
            report.awaiting.append(retailer)
            return
        txn = outcome.transaction
        assert txn is not None
        problem = outcome_problem(
            outcome,
            amount=repayment.amount,
            currency=repayment.currency,
            source=repayment.source_balance_id,
            destination=repayment.destination_balance_id,
        )
        if txn.status == "REJECTED" and not outcome.differences(
            amount=repayment.amount,
            currency=repayment.currency,
            source=repayment.source_balance_id,
            destination=repayment.destination_balance_id,
        ):
            # The queue refused our own transfer (e.g. insufficient funds): nothing moved.
            error = f"ledger rejected {repayment.ledger_reference}: {txn.rejection_reason}"
            log.error("auto-deduct for retailer %s: %s", retailer, error)
            report.failed.append(Failed(retailer, error, retryable=False))
            fail_repayment(conn, repayment, error=error, actor=actor, run_id=run_id)
            return
        if problem is not None:
            error = f"ledger transaction {txn.transaction_id} for {repayment.ledger_reference}: "
            log.error("auto-deduct for retailer %s: %s%s; left pending", retailer, error, problem)
            report.failed.append(Failed(retailer, error + problem, retryable=False))
            record_ledger_mismatch(
                conn,
                action="auto_deduct.ledger_mismatch",
                entity="retailer",
                entity_id=retailer,
                reference=repayment.ledger_reference,
                transaction_id=txn.transaction_id,
                problem=problem,
                intent={
                    "amount": repayment.amount,
                    "currency": repayment.currency,
                    "source": repayment.source_balance_id,
                    "destination": repayment.destination_balance_id,
                    "business_date": repayment.business_date,
                },
                actor=actor,
                run_id=run_id,
            )
            return
        applied = apply_repayment(
            conn,
            repayment,
            transaction_id=txn.transaction_id,
            ledger_amount=txn.precise_amount,
            recovered=outcome.recovered,
            actor=actor,
            run_id=run_id,
            reason=reason,
        )
    if applied:
        report.moved.append(
            {
                "retailer_id": retailer,
                "business_date": repayment.business_date.isoformat(),
                "amount": txn.precise_amount,
                "currency": txn.currency,
                "limited_by": repayment.limited_by,
                "ledger_reference": repayment.ledger_reference,
                "ledger_transaction_id": txn.transaction_id,
                "recovered": outcome.recovered,
            }
        )
