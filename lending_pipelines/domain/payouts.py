"""Creator payout rules as plain functions: eligibility, keys, and what to do after a Stripe
error. The set-based SQL in `lending_pipelines.db.payouts` implements the same eligibility rule
for every creator at once; tests and the benchmark compare the two.

Eligibility of a creator for the payout date whose run starts at `as_of`:

1. KYC verified;
2. a Stripe Connect account;
3. available balance >= the minimum, where
   available = credits that became available by `as_of` (earnings are held back for the
               chargeback hold: available_at = created_at + hold days; exactly at the end of
               the hold they count)
             + every debit (withdrawals, chargebacks, negative adjustments), whenever made
             - tokens reserved by unpaid items of other payout batches;
4. the account's payouts enabled and its transfers capability active (refreshed from Stripe
   for the creators who pass 1-3).

The payout is the whole available balance, or — when the creator has pending withdrawal
requests — their total, capped at the available balance. Tokens become money at the
configured rate, rounded down to a minor unit (`domain.money`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from .money import tokens_to_minor

ENTRY_TYPES = ("earning", "withdrawal_completed", "chargeback", "adjustment")
# A Stripe idempotency key may be pruned 24 h after first use; past this age a replay is not
# trusted and the transfer group is looked up instead.
IDEMPOTENCY_TRUST_HOURS = 20


class Ineligible(StrEnum):
    KYC_NOT_VERIFIED = "kyc_not_verified"
    NO_CONNECT_ACCOUNT = "no_connect_account"
    HELD_FOR_CHARGEBACKS = "held_for_chargebacks"  # would reach the minimum once the hold ends
    BELOW_MINIMUM = "below_minimum"
    PAYOUTS_DISABLED = "payouts_disabled"  # payouts off or transfers capability not active
    ROUNDS_TO_ZERO = "rounds_to_zero"  # the payout is worth less than one minor unit


@dataclass(frozen=True)
class LedgerEntry:
    tokens: int  # signed: credits > 0, debits < 0
    created_at: datetime
    available_at: datetime


@dataclass(frozen=True)
class WithdrawalRequest:
    id: int
    tokens: int
    requested_at: datetime


@dataclass(frozen=True)
class CreatorState:
    creator_id: int
    kyc_status: str
    stripe_account_id: str | None
    payouts_enabled: bool
    transfers_capability: str | None
    entries: Sequence[LedgerEntry] = ()
    pending_requests: Sequence[WithdrawalRequest] = ()
    reserved_tokens: int = 0  # unpaid items of other batches


@dataclass(frozen=True)
class PayoutRules:
    as_of: datetime
    minimum_tokens: int
    token_rate: Decimal
    currency: str


@dataclass(frozen=True)
class Eligibility:
    creator_id: int
    reason: Ineligible | None  # None: eligible
    available_tokens: int
    held_tokens: int
    requested_tokens: int | None
    payout_tokens: int
    amount_minor: int
    request_ids: tuple[int, ...] = ()

    @property
    def eligible(self) -> bool:
        return self.reason is None


def available_at(entry_type: str, created_at: datetime, hold_days: int) -> datetime:
    """When an entry's tokens count: earnings after the chargeback hold, the rest at once."""
    if entry_type not in ENTRY_TYPES:
        raise ValueError(f"entry_type is {entry_type!r}, expected one of {ENTRY_TYPES}")
    return created_at + timedelta(days=hold_days) if entry_type == "earning" else created_at


def balances(entries: Iterable[LedgerEntry], as_of: datetime) -> tuple[int, int]:
    """(available, held) tokens at `as_of` before reservations."""
    available = held = 0
    for entry in entries:
        if entry.tokens < 0 or entry.available_at <= as_of:
            available += entry.tokens
        elif entry.created_at <= as_of:
            held += entry.tokens
    return available, held


def evaluate_creator(state: CreatorState, rules: PayoutRules) -> Eligibility:
    """The eligibility rule for one creator (the SQL does the same for all at once)."""
    available, held = balances(state.entries, rules.as_of)
    available -= state.reserved_tokens
    requests = [r for r in state.pending_requests if r.requested_at <= rules.as_of]
    requested = sum(r.tokens for r in requests) if requests else None
    payout = max(0, min(requested, available) if requested is not None else available)

    def result(reason: Ineligible | None, tokens: int = 0, amount: int = 0) -> Eligibility:
        return Eligibility(
            creator_id=state.creator_id,
            reason=reason,
            available_tokens=available,
            held_tokens=held,
            requested_tokens=requested,
            payout_tokens=tokens,
            amount_minor=amount,
            request_ids=tuple(sorted(r.id for r in requests)) if reason is None else (),
        )

    if state.kyc_status != "verified":
        return result(Ineligible.KYC_NOT_VERIFIED)
    if not state.stripe_account_id:
        return result(Ineligible.NO_CONNECT_ACCOUNT)
    if available < rules.minimum_tokens:
        if available + held >= rules.minimum_tokens:
            return result(Ineligible.HELD_FOR_CHARGEBACKS)
        return result(Ineligible.BELOW_MINIMUM)
    if not state.payouts_enabled or state.transfers_capability != "active":
        return result(Ineligible.PAYOUTS_DISABLED)
    amount = tokens_to_minor(payout, rules.token_rate, rules.currency)
    if amount < 1:
        return result(Ineligible.ROUNDS_TO_ZERO)
    return result(None, payout, amount)


# --- keys -------------------------------------------------------------------------------------


def batch_key(payout_date: date) -> str:
    return f"payouts-{payout_date.isoformat()}"


def batch_hash(payout_date: date) -> str:
    """The batch's unique hash: a function of the payout date only, so a re-run finds it."""
    return hashlib.sha256(f"creator-payouts:{payout_date.isoformat()}".encode()).hexdigest()[:32]


def item_key(payout_date: date, creator_id: int) -> str:
    """`batch:creator` — the item's idempotency key and its Stripe transfer_group."""
    return f"{batch_key(payout_date)}:{creator_id}"


def stripe_idempotency_key(item_idempotency_key: str, generation: int) -> str:
    """The key sent to Stripe. Generation 1 is the item key itself; a new generation is only
    started after confirming that no transfer exists for the item (see `retry_plan`)."""
    if generation < 1:
        raise ValueError(f"key generation is {generation}, expected >= 1")
    return item_idempotency_key if generation == 1 else f"{item_idempotency_key}:g{generation}"


# --- after a Stripe error ---------------------------------------------------------------------

# Error kinds (values of resources.stripe_connect.StripeErrorKind) and what they mean for an item.
RETRYABLE_KINDS = frozenset({"rate_limited", "connection", "server", "conflict"})
OUTCOME_UNKNOWN_KINDS = frozenset({"connection", "server", "conflict"})
FINAL_REASONS = {
    "invalid_account": "the connected account cannot receive transfers",
    "balance_insufficient": "the platform's available Stripe balance is too low",
    "idempotency": "Stripe saw this idempotency key with other parameters",
    "invalid_request": "Stripe refused the request",
    "authentication": "the Stripe API key was refused",
    "permission": "the Stripe API key lacks permission",
}


@dataclass(frozen=True)
class FailureDecision:
    retryable: bool
    outcome_unknown: bool  # Stripe may have made the transfer
    reason: str


def classify_transfer_failure(kind: str, *, replayed: bool = False) -> FailureDecision:
    """What a failed transfer attempt means for its payout item."""
    if kind in RETRYABLE_KINDS:
        if kind == "rate_limited":
            reason = "rate limited by Stripe; never processed"
        elif replayed:
            reason = f"{kind} error stored by Stripe under this key"
        else:
            reason = f"{kind} error; Stripe may or may not have made the transfer"
        return FailureDecision(True, kind in OUTCOME_UNKNOWN_KINDS, reason)
    if kind in FINAL_REASONS:
        return FailureDecision(False, False, FINAL_REASONS[kind])
    raise ValueError(f"unknown Stripe error kind {kind!r}")


class RetryPlan(StrEnum):
    SAME_KEY = "same_key"  # resend the same idempotency key: Stripe replays or executes it once
    CONFIRM_THEN_NEW_KEY = "confirm_then_new_key"  # look the transfer group up; none → new key
    STOP = "stop"  # a final error: stays failed with its reason


def retry_plan(
    *,
    error_kind: str,
    outcome_unknown: bool,
    replayed: bool,
    key_age_hours: float,
    retry_final_kinds: Iterable[str] = (),
) -> RetryPlan:
    """How the daily retry treats a failed item.

    While the outcome is unknown and the key is fresh, the same key is sent again: Stripe either
    replays the transfer it made or executes the request once. A definite failure (a stored
    error, a final error an operator asked to retry, or a key old enough to be pruned) gets a
    new attempt only after the transfer group shows no transfer. `key_age_hours` counts from
    the first time the item's current key generation was sent — Stripe prunes keys 24 h after
    first use, whatever happened since.
    """
    if error_kind not in RETRYABLE_KINDS and error_kind not in set(retry_final_kinds):
        return RetryPlan.STOP
    if error_kind not in RETRYABLE_KINDS:
        return RetryPlan.CONFIRM_THEN_NEW_KEY
    if replayed or key_age_hours >= IDEMPOTENCY_TRUST_HOURS:
        return RetryPlan.CONFIRM_THEN_NEW_KEY
    if error_kind == "rate_limited" or outcome_unknown:
        return RetryPlan.SAME_KEY
    return RetryPlan.CONFIRM_THEN_NEW_KEY
