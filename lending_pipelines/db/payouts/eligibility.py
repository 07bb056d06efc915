"""Evaluating a payout date in one SQL statement: the Connect accounts to refresh first, the
reason for every creator who is not paid, the amount for every one who is."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ...domain.money import minor_units_per_token
from .tables import (
    payout_eligibility,
    payout_evaluations,
)

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
