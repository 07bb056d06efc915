"""Creator payouts: tables and set-based queries (workflow 3).

Tokens live in `ledger_entries` (earning, withdrawal_completed, chargeback, adjustment; signed
token amounts; `available_at` = created_at + the chargeback hold for earnings). A payout date
is evaluated once (`payout_evaluations` + one row per relevant creator in `payout_eligibility`,
with the reason when not eligible), then frozen into one `payout_batches` row (unique payout
date and batch hash) and one `payout_items` row per creator (unique idempotency key
`payouts-<date>:<creator>`), assigned to chunks of `chunk_size` (`payout_chunks`).

Claiming chunks and items, and recording what Stripe answered, is in `payouts_work`; claiming
a creator's tokens across payout dates in `payouts_claims`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.engine import Connection

from ..domain import payouts as rules
from ..domain.money import minor_units_per_token
from . import payouts_claims as claims
from .meta import metadata

NOW = sa.text("now()")
FALSE = sa.text("false")

KYC_STATUSES = ("pending", "verified", "rejected")
ITEM_STATUSES = ("pending", "processing", "paid", "failed", "reversed")
OPEN_ITEM_STATUSES = ("pending", "processing", "failed")  # tokens reserved, not yet debited
BATCH_STATUSES = ("processing", "completed", "completed_with_failures")
REQUEST_STATUSES = ("pending", "in_batch", "completed", "cancelled")
CHUNK_STATUSES = ("pending", "done")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


creators = sa.Table(
    "creators",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("external_ref", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("kyc_status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("stripe_account_id", sa.Text),
    sa.Column("payouts_enabled", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("transfers_capability", sa.Text),
    sa.Column("account_requirements_due", JSONB),
    sa.Column("account_disabled_reason", sa.Text),
    sa.Column("account_checked_at", sa.DateTime(timezone=True)),
    sa.Column("account_event_at", sa.DateTime(timezone=True)),  # last account.updated applied
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("external_ref"),
    sa.UniqueConstraint("stripe_account_id"),
    sa.CheckConstraint(_in("kyc_status", KYC_STATUSES), name="kyc_status"),
)

payout_batches = sa.Table(
    "payout_batches",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("payout_date", sa.Date, nullable=False),
    sa.Column("batch_hash", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="processing"),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("token_rate", sa.Numeric(18, 8), nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pending_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("paid_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("total_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("paid_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failed_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_by_run_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("payout_date"),
    sa.UniqueConstraint("batch_hash"),
    sa.CheckConstraint(_in("status", BATCH_STATUSES), name="status"),
)

payout_items = sa.Table(
    "payout_items",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey(payout_batches.c.id), nullable=False),
    sa.Column("creator_id", sa.BigInteger, sa.ForeignKey(creators.c.id), nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("chunk_no", sa.Integer, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("destination_account", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("key_generation", sa.Integer, nullable=False, server_default="1"),
    sa.Column("stripe_transfer_id", sa.Text),
    sa.Column("error_kind", sa.Text),
    sa.Column("error_code", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("retryable", sa.Boolean),
    sa.Column("outcome_unknown", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("error_replayed", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("claimed_by", sa.Text),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("paid_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    # when the current key generation was first sent: Stripe prunes a key 24 h after first use
    sa.Column("key_sent_at", sa.DateTime(timezone=True)),
    sa.Column("amount_reversed_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reversed_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("idempotency_key"),
    sa.UniqueConstraint("batch_id", "creator_id"),
    sa.UniqueConstraint("stripe_transfer_id"),
    sa.CheckConstraint("tokens > 0", name="tokens_positive"),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.CheckConstraint(_in("status", ITEM_STATUSES), name="status"),
    sa.CheckConstraint(
        "status <> 'paid' OR (stripe_transfer_id IS NOT NULL AND paid_at IS NOT NULL)",
        name="paid_has_transfer",
    ),
    sa.CheckConstraint(
        "status <> 'reversed' OR (stripe_transfer_id IS NOT NULL AND amount_reversed_minor > 0)",
        name="reversed_has_transfer",
    ),
    sa.Index("ix_payout_items_batch_id_chunk_no", "batch_id", "chunk_no"),
    sa.Index(
        "ix_payout_items_open_by_creator",
        "creator_id",
        postgresql_where=sa.text("status IN ('pending', 'processing', 'failed')"),
    ),
)

payout_chunks = sa.Table(
    "payout_chunks",
    metadata,
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey(payout_batches.c.id), primary_key=True),
    sa.Column("chunk_no", sa.Integer, primary_key=True),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("passes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_run_id", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("leased_by", sa.Text),  # the worker holding the chunk until lease_until
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.CheckConstraint(_in("status", CHUNK_STATUSES), name="status"),
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("creator_id", sa.BigInteger, sa.ForeignKey(creators.c.id), nullable=False),
    sa.Column("entry_type", sa.Text, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payout_item_id", sa.BigInteger, sa.ForeignKey(payout_items.c.id)),
    sa.Column("reference", sa.Text),
    sa.Column("description", sa.Text),
    sa.UniqueConstraint("payout_item_id"),
    sa.CheckConstraint(_in("entry_type", rules.ENTRY_TYPES), name="entry_type"),
    sa.CheckConstraint(
        "(entry_type = 'earning' AND tokens > 0) "
        "OR (entry_type IN ('withdrawal_completed', 'chargeback') AND tokens < 0) "
        "OR (entry_type = 'adjustment' AND tokens <> 0)",
        name="tokens_sign",
    ),
    sa.CheckConstraint(
        "payout_item_id IS NULL OR entry_type = 'withdrawal_completed'", name="item_withdrawal"
    ),
    sa.Index("ix_ledger_entries_creator_id_available_at", "creator_id", "available_at"),
    sa.Index(
        "ix_ledger_entries_reversal_reference",
        "reference",
        unique=True,
        postgresql_where=sa.text("reference LIKE 'reversal:%'"),
    ),
)

withdrawal_requests = sa.Table(
    "withdrawal_requests",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("creator_id", sa.BigInteger, sa.ForeignKey(creators.c.id), nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("payout_item_id", sa.BigInteger, sa.ForeignKey(payout_items.c.id)),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("tokens > 0", name="tokens_positive"),
    sa.CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),
    sa.Index(
        "ix_withdrawal_requests_pending",
        "creator_id",
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

payout_evaluations = sa.Table(
    "payout_evaluations",
    metadata,
    sa.Column("payout_date", sa.Date, primary_key=True),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("minimum_tokens", sa.BigInteger, nullable=False),
    sa.Column("token_rate", sa.Numeric(18, 8), nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("outcomes", JSONB, nullable=False),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("run_id", sa.Text),
)

payout_eligibility = sa.Table(
    "payout_eligibility",
    metadata,
    sa.Column("payout_date", sa.Date, primary_key=True),
    sa.Column("creator_id", sa.BigInteger, sa.ForeignKey(creators.c.id), primary_key=True),
    sa.Column("reason", sa.Text),  # NULL: eligible
    sa.Column("available_tokens", sa.BigInteger, nullable=False),
    sa.Column("held_tokens", sa.BigInteger, nullable=False),
    sa.Column("requested_tokens", sa.BigInteger),
    sa.Column("payout_tokens", sa.BigInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("destination_account", sa.Text),
    sa.Column("withdrawal_request_ids", ARRAY(sa.BigInteger), nullable=False, server_default="{}"),
    sa.CheckConstraint(
        "reason IS NOT NULL OR (payout_tokens > 0 AND amount_minor > 0 "
        "AND destination_account IS NOT NULL)",
        name="eligible_is_payable",
    ),
)

rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=False),
)

# Views for analysts until the dbt models take over (created by migration 0003_payouts).
VIEW_NAMES = ("payout_batch_summary", "creator_payout_history", "creator_token_balances")


class PayoutStateError(RuntimeError):
    """A payout step found the data in a state it must not act on."""


# --- creators, ledger, requests -----------------------------------------------------------------


def upsert_creators(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert or update creators by external_ref; returns external_ref → id."""
    if not rows:
        return {}
    stmt = insert(creators).values(list(rows))
    updatable = {k for row in rows for k in row} - {"external_ref"}
    stmt = stmt.on_conflict_do_update(
        index_elements=[creators.c.external_ref],
        set_={**{k: stmt.excluded[k] for k in updatable}, "updated_at": sa.func.now()},
    )
    result = conn.execute(stmt.returning(creators.c.external_ref, creators.c.id))
    return {ref: creator_id for ref, creator_id in result}


def add_ledger_entries(conn: Connection, rows: Sequence[dict[str, Any]], *, hold_days: int) -> None:
    """Append ledger entries (creator_id, entry_type, tokens, created_at[, reference,
    description]); `available_at` follows the chargeback hold (domain.payouts.available_at)."""
    if not rows:
        return
    prepared = []
    for row in rows:
        created_at = row["created_at"]
        prepared.append(
            {
                "reference": None,
                "description": None,
                **row,
                "available_at": rules.available_at(row["entry_type"], created_at, hold_days),
            }
        )
    conn.execute(sa.insert(ledger_entries), prepared)


def add_withdrawal_requests(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(sa.insert(withdrawal_requests), list(rows))


# --- eligibility ----------------------------------------------------------------------------------

_BALANCES = """
    bal AS (
        SELECT creator_id,
               coalesce(sum(tokens) FILTER (WHERE tokens < 0 OR available_at <= :as_of), 0)
                   AS available,
               coalesce(sum(tokens) FILTER (
                   WHERE tokens > 0 AND available_at > :as_of AND created_at <= :as_of), 0)
                   AS held
        FROM lending.ledger_entries
        GROUP BY creator_id
    ),
    reserved AS (
        SELECT i.creator_id, sum(i.tokens) AS tokens
        FROM lending.payout_items i
        JOIN lending.payout_batches b ON b.id = i.batch_id
        WHERE i.status IN ('pending', 'processing', 'failed') AND b.payout_date <> :payout_date
        GROUP BY i.creator_id
    )
"""

_CANDIDATES_SQL = sa.text(
    f"""
    WITH {_BALANCES}
    SELECT c.id, c.stripe_account_id, c.account_event_at
    FROM lending.creators c
    JOIN bal ON bal.creator_id = c.id
    LEFT JOIN reserved r ON r.creator_id = c.id
    WHERE c.kyc_status = 'verified' AND c.stripe_account_id IS NOT NULL
      AND bal.available - coalesce(r.tokens, 0) >= :minimum
    ORDER BY c.id
    """
)

_EVALUATE_SQL = sa.text(
    f"""
    WITH {_BALANCES},
    req AS (
        SELECT creator_id, sum(tokens) AS requested, array_agg(id ORDER BY id) AS ids
        FROM lending.withdrawal_requests
        WHERE status = 'pending' AND requested_at <= :as_of
        GROUP BY creator_id
    ),
    base AS (
        SELECT c.id AS creator_id, c.kyc_status, c.stripe_account_id, c.payouts_enabled,
               c.transfers_capability,
               coalesce(bal.available, 0) - coalesce(r.tokens, 0) AS available,
               coalesce(bal.held, 0) AS held,
               req.requested, req.ids
        FROM lending.creators c
        LEFT JOIN bal ON bal.creator_id = c.id
        LEFT JOIN reserved r ON r.creator_id = c.id
        LEFT JOIN req ON req.creator_id = c.id
        WHERE bal.creator_id IS NOT NULL OR req.creator_id IS NOT NULL
    ),
    decided AS (
        SELECT base.*,
               greatest(0, CASE WHEN requested IS NULL THEN available
                                ELSE least(requested, available) END) AS payout
        FROM base
    ),
    evaluated AS (
        SELECT d.*,
               floor(d.payout * CAST(:minor_per_token AS numeric))::bigint AS amount,
               CASE
                   WHEN kyc_status <> 'verified' THEN 'kyc_not_verified'
                   WHEN stripe_account_id IS NULL THEN 'no_connect_account'
                   WHEN available < :minimum AND available + held >= :minimum
                       THEN 'held_for_chargebacks'
                   WHEN available < :minimum THEN 'below_minimum'
                   WHEN NOT payouts_enabled OR transfers_capability IS DISTINCT FROM 'active'
                       THEN 'payouts_disabled'
                   WHEN floor(d.payout * CAST(:minor_per_token AS numeric)) < 1
                       THEN 'rounds_to_zero'
               END AS reason
        FROM decided d
    ),
    stored AS (
        INSERT INTO lending.payout_eligibility (
            payout_date, creator_id, reason, available_tokens, held_tokens, requested_tokens,
            payout_tokens, amount_minor, currency, destination_account, withdrawal_request_ids)
        SELECT :payout_date, creator_id, reason, available, held, requested,
               CASE WHEN reason IS NULL THEN payout ELSE 0 END,
               CASE WHEN reason IS NULL THEN amount ELSE 0 END,
               :currency, stripe_account_id,
               CASE WHEN reason IS NULL THEN coalesce(ids, '{{}}') ELSE '{{}}' END
        FROM evaluated
        WHERE reason IS NULL OR available > 0 OR held > 0 OR requested IS NOT NULL
        RETURNING reason, payout_tokens, amount_minor
    )
    SELECT coalesce(reason, 'eligible') AS outcome, count(*) AS creators,
           coalesce(sum(payout_tokens), 0) AS tokens, coalesce(sum(amount_minor), 0) AS amount
    FROM stored
    GROUP BY 1
    ORDER BY 1
    """
)


@dataclass(frozen=True)
class Outcome:
    creators: int
    tokens: int
    amount_minor: int


@dataclass(frozen=True)
class EligibilitySummary:
    payout_date: date
    as_of: datetime
    outcomes: dict[str, Outcome]  # "eligible" or an Ineligible reason → counts

    @property
    def eligible(self) -> Outcome:
        return self.outcomes.get("eligible", Outcome(0, 0, 0))


def _lock_payout_date(conn: Connection, payout_date: date) -> None:
    """Serialise work on one payout date across runs (transaction-scoped advisory lock)."""
    conn.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext('lending.payouts'), :day)"),
        {"day": payout_date.toordinal()},
    )


def account_refresh_candidates(
    conn: Connection, *, payout_date: date, as_of: datetime, minimum_tokens: int
) -> list[tuple[int, str, datetime | None]]:
    """Creators who pass every rule but the account state: (creator id, Stripe account id,
    when a verified account.updated event last set its state)."""
    rows = conn.execute(
        _CANDIDATES_SQL,
        {"as_of": as_of, "payout_date": payout_date, "minimum": minimum_tokens},
    )
    return [(creator_id, account, event_at) for creator_id, account, event_at in rows]


def apply_account_states(conn: Connection, states: Sequence[dict[str, Any]]) -> int:
    """Store refreshed Connect account states in one statement. Each state: creator_id,
    payouts_enabled, transfers_capability, requirements_due (list), disabled_reason."""
    if not states:
        return 0
    result = conn.execute(
        sa.text(
            """
            UPDATE lending.creators c
            SET payouts_enabled = v.payouts_enabled,
                transfers_capability = v.transfers_capability,
                account_requirements_due = v.requirements_due,
                account_disabled_reason = v.disabled_reason,
                account_checked_at = now(),
                updated_at = now()
            FROM jsonb_to_recordset(CAST(:states AS jsonb)) AS v(
                creator_id bigint, payouts_enabled boolean, transfers_capability text,
                requirements_due jsonb, disabled_reason text)
            WHERE c.id = v.creator_id
            """
        ),
        {"states": json.dumps(list(states))},
    )
    return result.rowcount


def evaluate_eligibility(
    conn: Connection,
    *,
    payout_date: date,
    as_of: datetime,
    minimum_tokens: int,
    token_rate: Decimal,
    currency: str,
    run_id: str | None = None,
) -> EligibilitySummary:
    """Evaluate every creator for `payout_date` in one statement and store the result.

    Replaces an earlier evaluation of the same date (the batch, once created, is frozen and no
    longer reads this table)."""
    _lock_payout_date(conn, payout_date)
    conn.execute(
        sa.delete(payout_eligibility).where(payout_eligibility.c.payout_date == payout_date)
    )
    rows = conn.execute(
        _EVALUATE_SQL,
        {
            "as_of": as_of,
            "payout_date": payout_date,
            "minimum": minimum_tokens,
            "minor_per_token": minor_units_per_token(token_rate, currency),
            "currency": currency.lower(),
        },
    )
    outcomes = {
        row.outcome: Outcome(row.creators, int(row.tokens), int(row.amount)) for row in rows
    }
    values = {
        "as_of": as_of,
        "minimum_tokens": minimum_tokens,
        "token_rate": token_rate,
        "currency": currency.lower(),
        "outcomes": {k: vars(v) for k, v in outcomes.items()},
        "run_id": run_id,
        "evaluated_at": sa.func.now(),
    }
    stmt = insert(payout_evaluations).values(payout_date=payout_date, **values)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=[payout_evaluations.c.payout_date], set_=values)
    )
    return EligibilitySummary(payout_date, as_of, outcomes)


def stored_evaluation(conn: Connection, payout_date: date) -> EligibilitySummary | None:
    row = conn.execute(
        sa.select(payout_evaluations).where(payout_evaluations.c.payout_date == payout_date)
    ).first()
    if row is None:
        return None
    outcomes = {k: Outcome(**v) for k, v in row.outcomes.items()}
    return EligibilitySummary(payout_date, row.as_of, outcomes)


def eligibility_rows(conn: Connection, payout_date: date) -> list[sa.Row]:
    return list(
        conn.execute(
            sa.select(payout_eligibility)
            .where(payout_eligibility.c.payout_date == payout_date)
            .order_by(payout_eligibility.c.creator_id)
        )
    )


# --- batches ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchTotals:
    batch_id: int
    payout_date: date
    status: str
    currency: str
    item_count: int
    pending_count: int
    paid_count: int
    failed_count: int
    total_tokens: int
    total_amount_minor: int
    paid_amount_minor: int
    failed_amount_minor: int


def _totals(row: sa.Row) -> BatchTotals:
    return BatchTotals(**{name: row._mapping[name] for name in BatchTotals.__dataclass_fields__})


def _batch_columns():
    return [
        payout_batches.c.id.label("batch_id"),
        *[
            payout_batches.c[name]
            for name in BatchTotals.__dataclass_fields__
            if name != "batch_id"
        ],
    ]


def get_batch(conn: Connection, payout_date: date) -> BatchTotals | None:
    row = conn.execute(
        sa.select(*_batch_columns()).where(payout_batches.c.payout_date == payout_date)
    ).first()
    return None if row is None else _totals(row)


def latest_batch(conn: Connection) -> BatchTotals | None:
    row = conn.execute(
        sa.select(*_batch_columns()).order_by(payout_batches.c.payout_date.desc()).limit(1)
    ).first()
    return None if row is None else _totals(row)


@dataclass(frozen=True)
class BatchCreation:
    totals: BatchTotals
    created: bool  # False: the batch existed; nothing new was written
    claims_reduced: int = 0  # proposals shrunk to what other dates had left unclaimed
    claims_dropped: int = 0  # proposals dropped: other dates had claimed the tokens


def create_batch(
    conn: Connection,
    *,
    payout_date: date,
    chunk_size: int,
    run_id: str | None = None,
) -> BatchCreation:
    """Freeze the evaluated eligibility of `payout_date` into a batch, its items and chunks.

    The evaluation is re-checked under one row lock per creator first
    (`payouts_claims.claim_creator_tokens`): tokens another payout date claimed meanwhile are
    not claimed again, whatever runs overlap.

    Idempotent: when the batch exists nothing is written (a second run, concurrent or later,
    creates no second batch or item)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size is {chunk_size}, expected >= 1")
    _lock_payout_date(conn, payout_date)
    existing = get_batch(conn, payout_date)
    if existing is not None:
        return BatchCreation(existing, created=False)
    evaluation = conn.execute(
        sa.select(payout_evaluations).where(payout_evaluations.c.payout_date == payout_date)
    ).first()
    if evaluation is None:
        raise PayoutStateError(
            f"payout date {payout_date}: eligibility was never evaluated; materialize "
            "eligible_creators for this partition first"
        )
    claim = claims.claim_creator_tokens(
        conn,
        payout_date=payout_date,
        as_of=evaluation.as_of,
        minimum_tokens=evaluation.minimum_tokens,
        minor_per_token=minor_units_per_token(evaluation.token_rate, evaluation.currency),
    )
    batch_id = conn.execute(
        insert(payout_batches)
        .values(
            payout_date=payout_date,
            batch_hash=rules.batch_hash(payout_date),
            currency=evaluation.currency,
            token_rate=evaluation.token_rate,
            created_by_run_id=run_id,
        )
        .returning(payout_batches.c.id)
    ).scalar_one()
    params = {
        "batch_id": batch_id,
        "payout_date": payout_date,
        "batch_key": rules.batch_key(payout_date),
        "chunk_size": chunk_size,
    }
    conn.execute(
        sa.text(
            """
            INSERT INTO lending.payout_items (
                batch_id, creator_id, idempotency_key, chunk_no, tokens, amount_minor, currency,
                destination_account)
            SELECT :batch_id, e.creator_id, :batch_key || ':' || e.creator_id,
                   ((row_number() OVER (ORDER BY e.creator_id)) - 1) / :chunk_size,
                   e.payout_tokens, e.amount_minor, e.currency, e.destination_account
            FROM lending.payout_eligibility e
            WHERE e.payout_date = :payout_date AND e.reason IS NULL
            ON CONFLICT (idempotency_key) DO NOTHING
            """
        ),
        params,
    )
    conn.execute(
        sa.text(
            """
            UPDATE lending.withdrawal_requests r
            SET status = 'in_batch', payout_item_id = i.id, updated_at = now()
            FROM lending.payout_eligibility e
            JOIN lending.payout_items i ON i.batch_id = :batch_id AND i.creator_id = e.creator_id
            WHERE e.payout_date = :payout_date AND e.reason IS NULL
              AND r.id = ANY(e.withdrawal_request_ids) AND r.status = 'pending'
            """
        ),
        params,
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO lending.payout_chunks (batch_id, chunk_no, item_count)
            SELECT batch_id, chunk_no, count(*) FROM lending.payout_items
            WHERE batch_id = :batch_id GROUP BY batch_id, chunk_no
            """
        ),
        params,
    )
    return BatchCreation(
        refresh_batch_totals(conn, batch_id),
        created=True,
        claims_reduced=claim["reduced"],
        claims_dropped=claim["dropped"],
    )


def refresh_batch_totals(conn: Connection, batch_id: int) -> BatchTotals:
    """Recompute a batch's counts, amounts and status from its items (one statement)."""
    row = conn.execute(
        sa.text(
            """
            WITH s AS (
                SELECT count(*) AS items,
                       count(*) FILTER (WHERE status IN ('pending', 'processing')) AS open,
                       count(*) FILTER (WHERE status = 'paid') AS paid,
                       count(*) FILTER (WHERE status IN ('failed', 'reversed')) AS failed,
                       coalesce(sum(tokens), 0) AS tokens,
                       coalesce(sum(amount_minor), 0) AS amount,
                       coalesce(sum(amount_minor) FILTER (WHERE status = 'paid'), 0) AS paid_amount,
                       coalesce(sum(amount_minor) FILTER (
                           WHERE status IN ('failed', 'reversed')), 0) AS failed_amount
                FROM lending.payout_items WHERE batch_id = :batch_id
            )
            UPDATE lending.payout_batches b
            SET item_count = s.items, pending_count = s.open, paid_count = s.paid,
                failed_count = s.failed, total_tokens = s.tokens, total_amount_minor = s.amount,
                paid_amount_minor = s.paid_amount, failed_amount_minor = s.failed_amount,
                status = CASE WHEN s.open > 0 THEN 'processing'
                              WHEN s.failed > 0 THEN 'completed_with_failures'
                              ELSE 'completed' END,
                completed_at = CASE WHEN s.open > 0 THEN NULL
                                    ELSE coalesce(b.completed_at, now()) END,
                updated_at = now()
            FROM s
            WHERE b.id = :batch_id
            RETURNING b.id AS batch_id, b.payout_date, b.status, b.currency, b.item_count,
                      b.pending_count, b.paid_count, b.failed_count, b.total_tokens,
                      b.total_amount_minor, b.paid_amount_minor, b.failed_amount_minor
            """
        ),
        {"batch_id": batch_id},
    ).one()
    return _totals(row)


@dataclass(frozen=True)
class BatchInvariants:
    stored_total_minor: int
    items_total_minor: int
    stored_item_count: int
    item_count: int
    duplicate_creators: list[int]
    creators_in_other_open_batches: list[int]
    overdrawn_creators: list[int]  # open items of every date claim more than the balance

    @property
    def no_creator_twice(self) -> bool:
        return not self.duplicate_creators and not self.overdrawn_creators

    @property
    def totals_match(self) -> bool:
        return (
            self.stored_total_minor == self.items_total_minor
            and self.stored_item_count == self.item_count
        )


def batch_invariants(conn: Connection, batch_id: int) -> BatchInvariants:
    """What the blocking checks before transfers verify: the batch total is the sum of its
    items; no creator appears twice in the batch, and no creator's open items across every
    payout date claim more tokens than their balance holds."""
    row = conn.execute(
        sa.text(
            """
            SELECT b.total_amount_minor AS stored_total, b.item_count AS stored_count,
                   (SELECT coalesce(sum(amount_minor), 0)::bigint FROM lending.payout_items
                     WHERE batch_id = b.id) AS items_total,
                   (SELECT count(*) FROM lending.payout_items WHERE batch_id = b.id) AS items,
                   (SELECT coalesce(array_agg(creator_id), '{}') FROM (
                        SELECT creator_id FROM lending.payout_items WHERE batch_id = b.id
                        GROUP BY creator_id HAVING count(*) > 1) d) AS duplicates,
                   (SELECT coalesce(array_agg(DISTINCT i.creator_id), '{}')
                      FROM lending.payout_items i
                      JOIN lending.payout_items o ON o.creator_id = i.creator_id
                           AND o.batch_id <> i.batch_id
                           AND o.status IN ('pending', 'processing')
                     WHERE i.batch_id = b.id) AS elsewhere
            FROM lending.payout_batches b WHERE b.id = :batch_id
            """
        ),
        {"batch_id": batch_id},
    ).one()
    return BatchInvariants(
        stored_total_minor=row.stored_total,
        items_total_minor=row.items_total,
        stored_item_count=row.stored_count,
        item_count=row.items,
        duplicate_creators=sorted(row.duplicates),
        creators_in_other_open_batches=sorted(row.elsewhere),
        overdrawn_creators=claims.overdrawn_creators(conn, batch_id),
    )


def failed_items(conn: Connection, batch_id: int, limit: int = 50) -> list[sa.Row]:
    return list(
        conn.execute(
            sa.select(
                payout_items.c.creator_id,
                payout_items.c.idempotency_key,
                payout_items.c.amount_minor,
                payout_items.c.error_kind,
                payout_items.c.error_code,
                payout_items.c.error_message,
                payout_items.c.retryable,
                payout_items.c.attempts,
            )
            .where(
                payout_items.c.batch_id == batch_id,
                payout_items.c.status.in_(("failed", "reversed")),
            )
            .order_by(payout_items.c.creator_id)
            .limit(limit)
        )
    )


def ledger_transfer_mismatches(conn: Connection, batch_id: int) -> list[str]:
    """Paid items without exactly one matching withdrawal entry, or entries without a paid
    item: ledger entries must match transfers one to one."""
    rows = conn.execute(
        sa.text(
            """
            SELECT i.idempotency_key, i.status, i.stripe_transfer_id, i.tokens,
                   le.reference, le.tokens AS entry_tokens
            FROM lending.payout_items i
            LEFT JOIN lending.ledger_entries le ON le.payout_item_id = i.id
            WHERE i.batch_id = :batch_id
              AND ((i.status IN ('paid', 'reversed')
                    AND (le.id IS NULL OR le.reference <> i.stripe_transfer_id
                         OR le.tokens <> -i.tokens))
                   OR (i.status NOT IN ('paid', 'reversed') AND le.id IS NOT NULL))
            ORDER BY i.idempotency_key
            """
        ),
        {"batch_id": batch_id},
    )
    return [
        f"{r.idempotency_key}: item {r.status} transfer {r.stripe_transfer_id}, ledger "
        f"{r.reference} {r.entry_tokens} tokens (item {r.tokens})"
        for r in rows
    ]


# --- chunks and items -------------------------------------------------------------------------


def open_chunk_count(conn: Connection, batch_id: int) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(
            payout_chunks.c.batch_id == batch_id, payout_chunks.c.status == "pending"
        )
    ).scalar_one()


def batches_of_items(conn: Connection, item_ids: Sequence[int]) -> list[int]:
    if not item_ids:
        return []
    return list(
        conn.execute(
            sa.select(payout_items.c.batch_id)
            .where(payout_items.c.id.in_(list(item_ids)))
            .distinct()
        ).scalars()
    )


# --- shared request-rate limit -------------------------------------------------------------------


class PostgresRateLimiter:
    """A request-rate limit shared by every worker process and run (generic cell rate
    algorithm on one row of `rate_limits`): each caller reserves the next free slot, 1/rate
    seconds after the previous one, in one atomic statement, then sleeps until it."""

    def __init__(
        self,
        engine: sa.Engine,
        name: str,
        requests_per_second: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second is {requests_per_second!r}, expected > 0")
        self.engine = engine
        self.name = name
        self.interval = 1.0 / requests_per_second
        self._sleep = sleep

    def acquire(self) -> None:
        with self.engine.begin() as conn:
            wait = conn.execute(
                sa.text(
                    """
                    INSERT INTO lending.rate_limits AS r (name, next_slot_at)
                    VALUES (:name, clock_timestamp() + make_interval(secs => :interval))
                    ON CONFLICT (name) DO UPDATE
                    SET next_slot_at = greatest(r.next_slot_at, clock_timestamp())
                                       + make_interval(secs => :interval)
                    RETURNING extract(epoch FROM r.next_slot_at - clock_timestamp())::float
                              - :interval
                    """
                ),
                {"name": self.name, "interval": self.interval},
            ).scalar_one()
        if wait > 0:
            self._sleep(wait)
