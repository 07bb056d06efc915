"""The wallet auto-deduct run, shared by the daily asset and the Launchpad job: pending
repayments settled first by reference, then the day's deductions computed in one statement,
committed as guarded intents, posted to Blnk one by one under the repayment's row lock.

See `release.py` for the shape both runs share. The knobs (wallet currency, default percentage,
default minimum balance) are plain arguments: the caller reads them from `EscrowConfig`.
"""

from __future__ import annotations

import logging
import time
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from ...db.escrow.deductions import auto_deduct_candidates, compute_deductions
from ...db.escrow.repayments import Repayment, apply_repayment, fail_repayment
from ...db.escrow.settle import (
    create_guarded_intents,
    lock_pending_repayment,
    pending_repayments,
    record_ledger_mismatch,
)
from ...db.escrow.tables import auto_deduct_reference
from ...domain.currency import minor_units_per_major
from ...domain.deduction import percentage_basis_points
from ...partners.blnk import BlnkClient, BlnkError
from .report import Failed, RunReport, Skipped, audit_skips, outcome_problem

__all__ = ["run_auto_deduct"]


def run_auto_deduct(
    engine: sa.Engine,
    blnk: BlnkClient,
    *,
    wallet_currency: str,
    default_percentage: Decimal,
    default_minimum: int,
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
    percentage_basis_points(default_percentage)  # a bad default fails before any work
    report = RunReport(business_date=business_date, dry_run=dry_run)
    if not dry_run:
        with engine.begin() as conn:
            leftover = pending_repayments(conn)
        if leftover:
            log.warning("auto-deduct %s: settling %d pending repayment(s) first (%s)",
                        business_date, len(leftover),
                        sorted({str(r.business_date) for r in leftover}))  # fmt: skip
        for repayment in leftover:
            _deduct_one(engine, blnk, repayment, report, actor, run_id, log, reason)
    with engine.begin() as conn:
        candidates = auto_deduct_candidates(conn, business_date)
    readings: list[tuple[str, int]] = []
    by_retailer = {}
    for candidate in candidates:
        problem = candidate.problem(wallet_currency)
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

    with engine.begin() as conn:
        computed = compute_deductions(
            conn,
            wallet_currency,
            readings,
            default_percentage=default_percentage,
            default_minimum=default_minimum,
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
                "currency": wallet_currency,
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
    with engine.begin() as conn:
        created, refused = create_guarded_intents(conn, intents, business_date)
    report.skipped.extend(Skipped(retailer, why) for retailer, why in refused.items())

    audit_skips(
        engine,
        report.skipped,
        entity="retailer",
        action="auto_deduct.skipped",
        actor=actor,
        run_id=run_id,
        business_date=business_date,
        log=log,
    )
    for repayment in created:
        _deduct_one(engine, blnk, repayment, report, actor, run_id, log, reason)
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
    engine: sa.Engine,
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
    with engine.begin() as conn:
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
