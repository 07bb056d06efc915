"""Applying what Stripe says happened after a payout: reversed transfers, account changes.

A Stripe webhook is stored by the receiver once its signature is verified, and is still only a
hint: a reversal is applied from the transfer as retrieved from Stripe (`amount_reversed`),
matched on the item's transfer id, transfer group and amount by the caller. Applying is
idempotent: the item row is locked and only a larger `amount_reversed` than the one recorded
changes anything; the reversal's ledger entry has a unique reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .tables import creators, ledger_entries, payout_items


class ReversedTransfer(Protocol):
    id: str
    amount: int
    amount_reversed: int


@dataclass(frozen=True)
class PaidItem:
    id: int
    batch_id: int
    creator_id: int
    idempotency_key: str
    tokens: int
    amount_minor: int
    destination_account: str
    stripe_transfer_id: str
    status: str
    amount_reversed_minor: int


def paid_item_of_transfer(conn: Connection, transfer_id: str) -> PaidItem | None:
    """The item a transfer paid (paid or already reversed), or None."""
    row = conn.execute(
        sa.select(
            payout_items.c.id,
            payout_items.c.batch_id,
            payout_items.c.creator_id,
            payout_items.c.idempotency_key,
            payout_items.c.tokens,
            payout_items.c.amount_minor,
            payout_items.c.destination_account,
            payout_items.c.stripe_transfer_id,
            payout_items.c.status,
            payout_items.c.amount_reversed_minor,
        ).where(payout_items.c.stripe_transfer_id == transfer_id)
    ).first()
    return None if row is None else PaidItem(**row._mapping)


def tokens_given_back(tokens: int, amount_minor: int, amount_reversed_minor: int) -> int:
    """Tokens a reversal of `amount_reversed_minor` gives back (all of them when fully
    reversed; in proportion, rounded down, when partly)."""
    if amount_reversed_minor >= amount_minor:
        return tokens
    return tokens * amount_reversed_minor // amount_minor


def apply_reversal(
    conn: Connection, item_id: int, transfer: ReversedTransfer, *, source: str
) -> int:
    """Record Stripe's `amount_reversed` on a paid item: status `reversed`, the tokens given
    back to the creator by an adjustment entry. Returns the tokens given back now (0: nothing
    new, or the item does not hold this transfer)."""
    row = conn.execute(
        sa.select(
            payout_items.c.creator_id,
            payout_items.c.tokens,
            payout_items.c.amount_minor,
            payout_items.c.amount_reversed_minor,
            payout_items.c.idempotency_key,
        )
        .where(
            payout_items.c.id == item_id,
            payout_items.c.stripe_transfer_id == transfer.id,
            payout_items.c.status.in_(("paid", "reversed")),
        )
        .with_for_update(key_share=True)
    ).first()
    reversed_now = min(transfer.amount_reversed, transfer.amount)
    if row is None or reversed_now <= row.amount_reversed_minor:
        return 0
    delta = tokens_given_back(row.tokens, row.amount_minor, reversed_now) - tokens_given_back(
        row.tokens, row.amount_minor, row.amount_reversed_minor
    )
    conn.execute(
        sa.update(payout_items)
        .where(payout_items.c.id == item_id)
        .values(
            status="reversed",
            amount_reversed_minor=reversed_now,
            reversed_at=sa.func.now(),
            error_kind="reversed",
            error_message=f"transfer {transfer.id} reversed at Stripe: {reversed_now} of "
            f"{transfer.amount} ({source})",
            retryable=False,
            updated_at=sa.func.now(),
        )
    )
    if delta > 0:
        conn.execute(
            sa.insert(ledger_entries).values(
                creator_id=row.creator_id,
                entry_type="adjustment",
                tokens=delta,
                created_at=sa.func.now(),
                available_at=sa.func.now(),
                reference=f"reversal:{transfer.id}:{reversed_now}",
                description=f"payout {row.idempotency_key} reversed ({reversed_now} minor units)",
            )
        )
    return delta


def apply_account_event(
    conn: Connection,
    *,
    account_id: str,
    payouts_enabled: bool,
    transfers_capability: str | None,
    requirements_due: list[str],
    disabled_reason: str | None,
    event_at: datetime,
) -> bool:
    """Store a connected account's state from a verified `account.updated` event, unless a
    newer event was applied already. False: no creator holds the account, or it is older."""
    return (
        conn.execute(
            sa.update(creators)
            .where(
                creators.c.stripe_account_id == account_id,
                sa.or_(
                    creators.c.account_event_at.is_(None), creators.c.account_event_at < event_at
                ),
            )
            .values(
                payouts_enabled=payouts_enabled,
                transfers_capability=transfers_capability,
                account_requirements_due=requirements_due,
                account_disabled_reason=disabled_reason,
                account_checked_at=event_at,
                account_event_at=event_at,
                updated_at=sa.func.now(),
            )
        ).rowcount
        > 0
    )
