"""The work behind the payout assets and jobs, as plain functions of an engine and a Stripe
client: refreshing Connect accounts, paying one item, a chunk worker, retrying one item.

No database transaction is open while Stripe is called: claim (commit) → Stripe → record the
outcome in a new transaction (`db.payouts.work`). Before resending a key whose generation was
first sent 20 h ago or more, the transfer group is looked up: Stripe prunes keys 24 h after
their first use, and a resent pruned key would make a second transfer.

Kept apart from the Dagster definitions so the benchmark and the crash tests drive exactly the
code the assets run.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from ...db import payouts as db
from ...db.payouts import events, work
from ...domain import payouts as rules
from ...partners.stripe import (
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
    event_fresh_hours: float = 0,
) -> dict[str, int]:
    """Re-read from Stripe the account state of creators who pass every other rule — except
    those a verified `account.updated` event set less than `event_fresh_hours` ago."""
    with engine.connect() as conn:
        candidates = db.account_refresh_candidates(
            conn, payout_date=payout_date, as_of=as_of, minimum_tokens=minimum_tokens
        )
    fresh_since = datetime.now(UTC) - timedelta(hours=event_fresh_hours)
    from_events = [c for c in candidates if c[2] is not None and c[2] > fresh_since]
    states = []
    missing = 0
    for creator_id, account_id, event_at in candidates:
        if event_at is not None and event_at > fresh_since:
            continue  # fresh from a verified account.updated event: no Stripe call
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
        "accounts_from_events": len(from_events),
    }


class DuplicateTransferError(RuntimeError):
    """Stripe holds more than one transfer, or a mismatching one, for one payout item."""


def existing_transfer(client: StripeConnectClient, item: work.ClaimedItem) -> Transfer | None:
    """The transfer Stripe holds for an item (by its transfer group), or None. A transfer that
    was reversed is returned as it is (`amount_reversed`, `reversed`): the caller records it
    paid-then-reversed, never as an ordinary payment, and never sends another."""
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


def settle_found_transfer(engine: sa.Engine, item: work.ClaimedItem, transfer: Transfer) -> str:
    """Record a transfer Stripe already holds for the item; a reversed one is recorded as paid
    and then reversed in the same transaction (ledger entry given back, alert raised)."""
    with engine.begin() as conn:
        work.record_item_paid(conn, item, transfer_id=transfer.id, counted_attempt=False)
        if transfer.amount_reversed:
            events.apply_reversal(conn, item.id, transfer, source="lookup before resend")
    return "reversed" if transfer.amount_reversed else "replayed"


def send_transfer(engine: sa.Engine, item: work.ClaimedItem, client: StripeConnectClient) -> str:
    """Send the item's transfer with its current key (no transaction open), then record paid or
    failed in a new transaction. Returns paid | replayed | failed | skipped."""
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
        with engine.begin() as conn:
            work.record_item_failed(
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
    with engine.begin() as conn:
        recorded = work.record_item_paid(conn, item, transfer_id=transfer.id)
    if not recorded:
        return "skipped"
    return "replayed" if transfer.replayed else "paid"


def look_up_then_send(
    engine: sa.Engine, item: work.ClaimedItem, client: StripeConnectClient
) -> tuple[str, str]:
    """Look the item's transfer group up; record what Stripe holds, or send with a new key."""
    found = existing_transfer(client, item)
    if found is not None:
        return "found_existing", settle_found_transfer(engine, item, found)
    with engine.begin() as conn:
        renewed = work.start_new_key_generation(conn, item)
    if renewed is None:
        return "new_key", "skipped"
    return "new_key", send_transfer(engine, renewed, client)


def pay_claimed(engine: sa.Engine, item: work.ClaimedItem, client: StripeConnectClient) -> str:
    """Pay an item this worker claimed: a key first sent 20 h ago or more is looked up first."""
    if item.key_may_be_pruned:
        return look_up_then_send(engine, item, client)[1]
    return send_transfer(engine, item, client)


def pay_item(
    engine: sa.Engine,
    item_id: int,
    client: StripeConnectClient,
    *,
    run_id: str | None = None,
    lease: tuple[int, int, str, float] | None = None,
) -> str:
    """Claim one pending/processing item, pay it, record it. Returns paid | replayed |
    reversed | failed | skipped (paid or locked elsewhere meanwhile)."""
    item = work.claim_item(engine, item_id, ("pending", "processing"), run_id=run_id, lease=lease)
    if item is None:
        return "skipped"
    return pay_claimed(engine, item, client)


@dataclass
class WorkerReport:
    chunks: int = 0
    paid: int = 0
    replayed: int = 0
    reversed: int = 0
    failed: int = 0
    skipped: int = 0
    rate_limited_retries: int = 0
    seconds: float = 0.0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


DEFAULT_LEASE_SECONDS = 900.0


def run_chunk_worker(
    engine: sa.Engine,
    batch_id: int,
    client: StripeConnectClient,
    *,
    run_id: str | None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> WorkerReport:
    """Lease chunks one at a time until none is left; pay each chunk's unpaid items."""
    report = WorkerReport()
    started = time.monotonic()
    holder = f"{run_id or 'worker'}:{uuid.uuid4().hex[:12]}"
    while True:
        chunk_no = work.lease_next_chunk(
            engine, batch_id, holder=holder, run_id=run_id, lease_seconds=lease_seconds
        )
        if chunk_no is None:
            break
        try:
            for item_id in work.chunk_item_ids(engine, batch_id, chunk_no):
                outcome = pay_item(
                    engine,
                    item_id,
                    client,
                    run_id=run_id,
                    lease=(batch_id, chunk_no, holder, lease_seconds),
                )
                report.add(outcome)
        finally:
            # also on an exception: the chunk's lease ends, its open items stay for a re-run
            work.release_chunk(engine, batch_id, chunk_no, holder)
        report.chunks += 1
        with engine.begin() as conn:
            db.refresh_batch_totals(conn, batch_id)
    report.rate_limited_retries = client.rate_limited_retries
    report.seconds = round(time.monotonic() - started, 3)
    return report


SETTLE_PROCESSING = "settle_processing"


def retry_item(
    engine: sa.Engine,
    item_id: int,
    client: StripeConnectClient,
    *,
    retry_final_kinds: list[str],
    dry_run: bool,
    run_id: str | None = None,
) -> tuple[str, str]:
    """Apply the retry plan to one failed item, or settle one stuck in `processing` (claimed
    by a worker that died). Returns (plan, outcome)."""
    with engine.begin() as conn:
        item = work.lock_item(conn, item_id, ("failed", "processing"))
        if item is None:
            return "none", "skipped"
        if item.status == "processing":
            if dry_run:
                return SETTLE_PROCESSING, "planned"
            item = work.mark_claimed(conn, item, run_id=run_id, sending=not item.key_may_be_pruned)
            plan = None
        else:
            plan = rules.retry_plan(
                error_kind=item.error_kind or "",
                outcome_unknown=item.outcome_unknown,
                replayed=item.error_replayed,
                key_age_hours=item.key_age_hours or 0.0,
                retry_final_kinds=retry_final_kinds,
            )
            if dry_run or plan is rules.RetryPlan.STOP:
                return plan.value, "planned" if dry_run else "stopped"  # nothing written
            item = work.mark_claimed(
                conn, item, run_id=run_id, sending=plan is rules.RetryPlan.SAME_KEY
            )
    if plan is None:  # a dead worker's item: its key, or a lookup when the key is old
        return SETTLE_PROCESSING, pay_claimed(engine, item, client)
    if plan is rules.RetryPlan.SAME_KEY:
        outcome = send_transfer(engine, item, client)
        if outcome != "failed" or not work.error_replayed(engine, item_id):
            return plan.value, outcome
        # Stripe replayed a stored failure for this key: only a new key can succeed.
        item = work.claim_item(engine, item_id, ("failed",), run_id=run_id)
        if item is None:
            return plan.value, "skipped"
    how, outcome = look_up_then_send(engine, item, client)
    return rules.RetryPlan.CONFIRM_THEN_NEW_KEY.value, (
        outcome if how == "new_key" else "found_existing"
    )
