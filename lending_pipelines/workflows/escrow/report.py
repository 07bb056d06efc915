"""What an escrow or auto-deduct run reports (moved, skipped, failed, awaiting the ledger), how
it audits bad data, and how it judges a transfer read back from Blnk against its intent."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from ...db.audit import record_audits
from ...partners.blnk import LedgerOutcome

# Skip reasons that mean the data is wrong (audited), as opposed to a rule saying "not today".
BAD_DATA_PREFIXES = (
    "unknown_currency",
    "negative_debt",
    "not_wallet_currency",
    "missing_wallet_balance",
    "missing_repayment_pool_balance",
    "missing_wholesaler_balance",
    "missing_escrow_pool_balance",
    "wallet_currency_mismatch",
    "wallet_not_in_ledger",
)


@dataclass(frozen=True)
class Skipped:
    entity_id: str
    reason: str

    @property
    def kind(self) -> str:
        return self.reason.split(":", 1)[0]

    @property
    def bad_data(self) -> bool:
        return self.kind in BAD_DATA_PREFIXES


@dataclass(frozen=True)
class Failed:
    entity_id: str
    error: str
    retryable: bool


@dataclass
class RunReport:
    """What a run did, in numbers an operator reads in the UI."""

    business_date: date
    dry_run: bool
    moved: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    # Posted, but Blnk's queue has not produced the outcome yet: recorded by a later run.
    awaiting: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def amount_by_currency(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for row in self.moved:
            totals[row["currency"]] += row["amount"]
        return dict(sorted(totals.items()))

    @property
    def recovered(self) -> int:
        return sum(1 for row in self.moved if row["recovered"])

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(skip.kind for skip in self.skipped).items()))

    @property
    def any_retryable_failure(self) -> bool:
        return any(failure.retryable for failure in self.failed)


def audit_skips(
    engine: sa.Engine,
    skips: list[Skipped],
    *,
    entity: str,
    action: str,
    actor: str,
    run_id: str | None,
    business_date: date,
    log: logging.Logger,
) -> None:
    """Bad data gets an audit entry (one statement for all) and a warning line each."""
    bad = [skip for skip in skips if skip.bad_data]
    for skip in bad:
        log.warning("%s %s skipped for %s: %s", entity, skip.entity_id, business_date, skip.reason)
    if not bad:
        return
    with engine.begin() as conn:
        record_audits(
            conn,
            [
                {
                    "actor": actor,
                    "action": action,
                    "entity": entity,
                    "entity_id": skip.entity_id,
                    "new_value": {"business_date": business_date},
                    "reason": skip.reason,
                    "run_id": run_id,
                }
                for skip in bad
            ],
        )


def outcome_problem(
    outcome: LedgerOutcome, *, amount: int, currency: str, source: str, destination: str
) -> str | None:
    """Why an outcome read back by reference is not the transfer we meant (None: it is)."""
    txn = outcome.transaction
    assert txn is not None  # callers handle `awaiting` first
    problems = outcome.differences(
        amount=amount, currency=currency, source=source, destination=destination
    )
    if txn.status != "APPLIED":
        problems.insert(0, f"status is {txn.status!r}, expected 'APPLIED'")
    return "; ".join(problems) or None
