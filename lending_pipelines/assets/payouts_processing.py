"""The work behind the payout assets and jobs, as plain functions of an engine and a Stripe
client: refreshing Connect accounts, paying one item, a chunk worker, retrying one item.

Kept apart from the Dagster definitions so the benchmark and the crash tests drive exactly the
code the assets run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from ..db import payouts as db
from ..domain import payouts as rules
from ..resources.stripe_connect import (
    StripeConnectClient,
    StripeConnectError,
    StripeErrorKind,
    Transfer,
)

STOP_RUN_KINDS = frozenset({StripeErrorKind.AUTHENTICATION, StripeErrorKind.PERMISSION})


def refresh_connect_accounts(
    engine: sa.Engine,
    client: StripeConnectClient,
    *,
    payout_date: date,
    as_of: datetime,
    minimum_tokens: int,
) -> dict[str, int]:
    """Re-read from Stripe the account state of creators who pass every other rule."""
    with engine.connect() as conn:
        candidates = db.account_refresh_candidates(
            conn, payout_date=payout_date, as_of=as_of, minimum_tokens=minimum_tokens
        )
    states = []
    missing = 0
    for creator_id, account_id in candidates:
        try:
            status = client.check_account(account_id)
        except StripeConnectError as exc:
            if exc.kind is StripeErrorKind.INVALID_REQUEST and exc.http_status == 404:
                missing += 1
                states.append(
                    {
                        "creator_id": creator_id,
                        "payouts_enabled": False,
                        "transfers_capability": None,
                        "requirements_due": [],
                        "disabled_reason": f"account {account_id} not found on Stripe",
                    }
                )
                continue
            raise
        states.append(
            {
                "creator_id": creator_id,
                "payouts_enabled": status.payouts_enabled,
                "transfers_capability": status.transfers_capability,
                "requirements_due": list(status.requirements_due),
                "disabled_reason": status.disabled_reason,
            }
        )
    with engine.begin() as conn:
        db.apply_account_states(conn, states)
    return {
        "accounts_checked": len(states),
        "accounts_not_payable": sum(
            1
            for s in states
            if not (s["payouts_enabled"] and s["transfers_capability"] == "active")
        ),
        "accounts_missing": missing,
    }


class DuplicateTransferError(RuntimeError):
    """Stripe holds more than one transfer, or a mismatching one, for one payout item."""


def existing_transfer(client: StripeConnectClient, item: db.LockedItem) -> Transfer | None:
    """The transfer Stripe holds for an item (by its transfer group), or None."""
    found = client.find_transfers(transfer_group=item.idempotency_key)
    if not found:
        return None
    if len(found) > 1:
        raise DuplicateTransferError(
            f"payout item {item.idempotency_key}: Stripe holds {len(found)} transfers "
            f"({', '.join(t.id for t in found)}); resolve by hand before paying again"
        )
    transfer = found[0]
    if transfer.amount != item.amount_minor or transfer.destination != item.destination_account:
        raise DuplicateTransferError(
            f"payout item {item.idempotency_key}: transfer {transfer.id} is {transfer.amount} to "
            f"{transfer.destination}, expected {item.amount_minor} to {item.destination_account}"
        )
    return transfer


def attempt_transfer(conn: sa.Connection, item: db.LockedItem, client: StripeConnectClient) -> str:
    """Send the item's transfer with its current key; record paid or failed on `conn` (the
    transaction holding the item's lock). Returns paid | replayed | failed."""
    try:
        transfer = client.create_transfer(
            amount=item.amount_minor,
            currency=item.currency,
            destination=item.destination_account,
            idempotency_key=item.stripe_key,
            transfer_group=item.idempotency_key,
            metadata={
                "payout_item": item.idempotency_key,
                "payout_date": item.payout_date.isoformat(),
                "creator_id": str(item.creator_id),
            },
            description=f"Creator payout {item.payout_date.isoformat()}",
        )
    except StripeConnectError as exc:
        if exc.kind in STOP_RUN_KINDS:
            raise  # a configuration problem: every item would fail the same way
        decision = rules.classify_transfer_failure(exc.kind.value, replayed=exc.replayed)
        db.record_item_failed(
            conn,
            item,
            kind=exc.kind.value,
            code=exc.code,
            message=f"{decision.reason}: {exc}",
            retryable=decision.retryable,
            outcome_unknown=decision.outcome_unknown,
            replayed=exc.replayed,
        )
        return "failed"
    if transfer.amount != item.amount_minor or transfer.destination != item.destination_account:
        raise DuplicateTransferError(
            f"payout item {item.idempotency_key}: Stripe answered transfer {transfer.id} of "
            f"{transfer.amount} to {transfer.destination} for key {item.stripe_key}"
        )
    db.record_item_paid(conn, item, transfer_id=transfer.id)
    return "replayed" if transfer.replayed else "paid"


def pay_item(engine: sa.Engine, item_id: int, client: StripeConnectClient) -> str:
    """Lock one pending/processing item, transfer, record — one transaction. Returns paid |
    replayed | failed | skipped (paid or locked elsewhere meanwhile)."""
    with engine.connect() as conn, conn.begin():
        item = db.lock_item(conn, item_id, ("pending", "processing"))
        if item is None:
            return "skipped"
        if (
            item.status == "processing"
            and item.hours_since_attempt >= rules.IDEMPOTENCY_TRUST_HOURS
        ):
            # Claimed so long ago that Stripe may have pruned the key: look before resending.
            found = existing_transfer(client, item)
            if found is not None:
                db.record_item_paid(conn, item, transfer_id=found.id, counted_attempt=False)
                return "replayed"
            item = db.start_new_key_generation(conn, item)
        return attempt_transfer(conn, item, client)


@dataclass
class WorkerReport:
    chunks: int = 0
    paid: int = 0
    replayed: int = 0
    failed: int = 0
    skipped: int = 0
    rate_limited_retries: int = 0
    seconds: float = 0.0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def run_chunk_worker(
    engine: sa.Engine,
    batch_id: int,
    client: StripeConnectClient,
    *,
    run_id: str | None,
) -> WorkerReport:
    """Claim chunks one at a time until none is left; pay each chunk's unpaid items."""
    report = WorkerReport()
    started = time.monotonic()
    while True:
        with db.lease_next_chunk(engine, batch_id, run_id) as lease:
            if lease is None:
                break
            with engine.begin() as conn:
                item_ids = db.start_chunk_items(conn, lease, run_id)
            for item_id in item_ids:
                outcome = pay_item(engine, item_id, client)
                report.add(outcome)
            report.chunks += 1
        with engine.begin() as conn:
            db.refresh_batch_totals(conn, batch_id)
    report.rate_limited_retries = client.rate_limited_retries
    report.seconds = round(time.monotonic() - started, 3)
    return report


def retry_item(
    engine: sa.Engine,
    item_id: int,
    client: StripeConnectClient,
    *,
    retry_final_kinds: list[str],
    dry_run: bool,
) -> tuple[str, str]:
    """Apply the retry plan to one failed item. Returns (plan, outcome)."""
    with engine.connect() as conn, conn.begin():
        item = db.lock_item(conn, item_id, ("failed",))
        if item is None:
            return "none", "skipped"
        plan = rules.retry_plan(
            error_kind=item.error_kind or "",
            outcome_unknown=item.outcome_unknown,
            replayed=item.error_replayed,
            hours_since_attempt=item.hours_since_attempt,
            retry_final_kinds=retry_final_kinds,
        )
        if dry_run or plan is rules.RetryPlan.STOP:
            return plan.value, "planned" if dry_run else "stopped"  # nothing written
        if plan is rules.RetryPlan.SAME_KEY:
            outcome = attempt_transfer(conn, item, client)
            if outcome != "failed":
                return plan.value, outcome
            item = db.lock_item(conn, item_id, ("failed",))
            if item is None or not item.error_replayed:
                return plan.value, outcome
            # Stripe replayed a stored failure for this key: only a new key can succeed.
        found = existing_transfer(client, item)
        if found is not None:
            db.record_item_paid(conn, item, transfer_id=found.id, counted_attempt=False)
            return rules.RetryPlan.CONFIRM_THEN_NEW_KEY.value, "found_existing"
        item = db.start_new_key_generation(conn, item)
        return rules.RetryPlan.CONFIRM_THEN_NEW_KEY.value, attempt_transfer(conn, item, client)
