"""Stripe events for creator payouts, applied without Dagster: reversed transfers and
connected-account changes.

The receiver stores each Stripe event in `inbound_events` once its Stripe-Signature verifies;
`stripe_events_sensor` launches `stripe_events_job` while some wait. An event is still a hint:

* `transfer.reversed` / `transfer.updated`: the transfer is retrieved from Stripe and what
  Stripe says (`amount_reversed`) is applied — only when it matches the paid item on transfer id,
  transfer group (the item key), destination and amount. Then the item becomes `reversed`, the
  tokens go back to the creator by a ledger adjustment, the batch totals are refreshed and an
  alert is sent. A mismatch is alerted and nothing is updated.
* `account.updated`: the account's payout state is stored with the event's time; within
  LENDING_STRIPE_ACCOUNT_EVENT_FRESH_HOURS it replaces the per-candidate Stripe call before a
  payout date.

No transaction is open during a Stripe call: events are read, each is applied in its own short
transaction after its Stripe lookup, and the outcomes are marked in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ...db import inbound
from ...db import payouts as db
from ...db.common import inbound_events
from ...db.payouts import events as events_db
from ...partners.stripe import StripeConnectClient, StripeConnectError
from ...partners.stripe.errors import StripeEventShapeError
from ...partners.stripe.models import AccountEvent, TransferEvent, parse_event

PROVIDER = "stripe"
TRANSFER_EVENTS = ("transfer.reversed", "transfer.updated")
ACCOUNT_EVENTS = ("account.updated",)


@dataclass
class Alert:
    title: str
    text: str
    severity: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventsReport:
    applied: int = 0
    reversals: int = 0
    accounts: int = 0
    ignored: int = 0
    mismatches: int = 0
    left_for_later: int = 0
    alerts: list[Alert] = field(default_factory=list)


def _apply_transfer_event(
    engine: sa.Engine, client: StripeConnectClient, event_id: str, payload: dict, report
) -> str | None:
    event = parse_event(TransferEvent, event_id, payload).data.object
    transfer_id, hinted = event.id, event.amount_reversed
    with engine.connect() as conn:
        item = events_db.paid_item_of_transfer(conn, transfer_id)
    if item is None:
        report.ignored += 1
        return f"ignored: no paid payout item holds transfer {transfer_id}"
    transfer = client.retrieve_transfer(transfer_id)  # the truth, not the event's copy
    problems = []
    if transfer.transfer_group != item.idempotency_key:
        problems.append(f"transfer_group {transfer.transfer_group!r} != {item.idempotency_key!r}")
    if transfer.amount != item.amount_minor:
        problems.append(f"amount {transfer.amount} != {item.amount_minor}")
    if transfer.destination != item.destination_account:
        problems.append(f"destination {transfer.destination} != {item.destination_account}")
    if hinted is not None and hinted > transfer.amount_reversed:
        problems.append(
            f"event says amount_reversed {hinted}, Stripe says {transfer.amount_reversed}"
        )
    if problems:
        report.mismatches += 1
        report.alerts.append(
            Alert(
                f"Stripe event {event_id} does not match payout item {item.idempotency_key}",
                "; ".join(problems) + ". Nothing was updated.",
                "error",
                {"transfer": transfer_id, "event": event_id},
            )
        )
        return "mismatch: " + "; ".join(problems)
    if transfer.amount_reversed <= item.amount_reversed_minor:
        return None  # nothing new at Stripe (e.g. a metadata update)
    with engine.begin() as conn:
        tokens = events_db.apply_reversal(conn, item.id, transfer, source=f"event {event_id}")
        db.refresh_batch_totals(conn, item.batch_id)
    report.reversals += 1
    report.alerts.append(
        Alert(
            f"Creator payout reversed: {item.idempotency_key}",
            f"Stripe transfer {transfer_id} to {item.destination_account} was reversed "
            f"({transfer.amount_reversed} of {transfer.amount} minor units); {tokens} tokens "
            f"went back to creator {item.creator_id}'s balance.",
            "warning",
            {"transfer": transfer_id, "creator": item.creator_id, "tokens_back": tokens},
        )
    )
    return None


def _apply_account_event(engine: sa.Engine, event_id: str, payload: dict, report) -> str | None:
    event = parse_event(AccountEvent, event_id, payload)
    account = event.data.object
    with engine.begin() as conn:
        applied = events_db.apply_account_event(
            conn,
            account_id=account.id,
            payouts_enabled=bool(account.payouts_enabled),
            transfers_capability=account.capabilities.transfers if account.capabilities else None,
            requirements_due=account.requirements_due,
            disabled_reason=account.requirements.disabled_reason if account.requirements else None,
            event_at=datetime.fromtimestamp(event.created, UTC),
        )
    if not applied:
        report.ignored += 1
        return f"ignored: no creator holds {account.id}, or a newer state was applied"
    report.accounts += 1
    return None


def apply_stripe_events(
    engine: sa.Engine, client: StripeConnectClient, *, limit: int = 500
) -> EventsReport:
    """Apply stored, unprocessed Stripe events oldest first; mark each with its outcome. An
    event whose Stripe lookup failed for a retryable reason stays for the next run."""
    report = EventsReport()
    with engine.connect() as conn:
        stored = list(
            conn.execute(
                sa.select(inbound_events.c.id, inbound_events.c.event_id, inbound_events.c.payload)
                .where(
                    inbound_events.c.provider == PROVIDER, inbound_events.c.processed_at.is_(None)
                )
                .order_by(inbound_events.c.id)
                .limit(limit)
            )
        )
    outcomes: dict[int, str | None] = {}
    for row in stored:
        payload = row.payload if isinstance(row.payload, dict) else {}
        kind = payload.get("type")
        try:
            if kind in TRANSFER_EVENTS:
                outcome = _apply_transfer_event(engine, client, row.event_id, payload, report)
            elif kind in ACCOUNT_EVENTS:
                outcome = _apply_account_event(engine, row.event_id, payload, report)
            else:
                report.ignored += 1
                outcome = f"ignored: event type {kind!r} is not applied by payouts"
        except StripeEventShapeError as exc:
            outcome = str(exc)
        except StripeConnectError as exc:
            if exc.retryable:
                report.left_for_later += 1
                continue
            outcome = f"stripe lookup failed: {exc}"
        if outcome is None:
            report.applied += 1
        outcomes[row.id] = outcome
    with engine.begin() as conn:
        inbound.mark_outcomes(conn, outcomes)
    return report
