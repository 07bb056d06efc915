"""Auto-deduct: the candidates of a business day and each retailer's deduction, computed in
one statement (`compute_deductions`; `domain.deduction` states the same rule in Python)."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain.currency import KNOWN_CURRENCIES
from ...domain.deduction import LimitedBy, SkipReason
from .tables import (
    PLATFORM,
)


@dataclass(frozen=True)
class DeductCandidate:
    retailer_id: str
    currency: str
    debt: int
    wallet_balance_id: str | None
    pool_balance_id: str | None
    # The debt row's version (xmin) when read: an intent is only created if it is unchanged.
    debt_version: str | None = None

    def problem(self, wallet_currency: str) -> str | None:
        """Bad data that stops a deduction before any wallet is read (None: proceed)."""
        if self.currency not in KNOWN_CURRENCIES:
            return f"unknown_currency: {self.currency!r}"
        if self.debt < 0:
            return f"negative_debt: {self.debt}"
        if self.currency != wallet_currency:
            return f"not_wallet_currency: debt in {self.currency}, wallets in {wallet_currency}"
        if self.wallet_balance_id is None:
            return f"missing_wallet_balance: retailer {self.retailer_id!r} ({self.currency})"
        if self.pool_balance_id is None:
            return f"missing_repayment_pool_balance: {self.currency}"
        return None


def auto_deduct_candidates(conn: Connection, business_date: date) -> list[DeductCandidate]:
    """Retailers with auto-deduct enabled and a non-zero debt that have no repayment record
    for `business_date` yet, with their wallet and the repayment pool's Blnk balances."""
    rows = conn.execute(
        sa.text(
            """
            SELECT d.retailer_id, d.currency, d.outstanding_amount AS debt,
                   w.balance_id AS wallet_balance_id, p.balance_id AS pool_balance_id,
                   CAST(d.xmin AS text) AS debt_version
              FROM lending.retailer_debts d
              JOIN lending.auto_deduct_settings s
                ON s.retailer_id = d.retailer_id AND s.enabled
              LEFT JOIN lending.blnk_accounts w
                ON w.owner_type = 'retailer_wallet' AND w.owner_id = d.retailer_id
               AND w.currency = d.currency
              LEFT JOIN lending.blnk_accounts p
                ON p.owner_type = 'repayment_pool' AND p.owner_id = :platform
               AND p.currency = d.currency
             WHERE d.outstanding_amount <> 0
               AND NOT EXISTS (
                     SELECT 1 FROM lending.repayments r
                      WHERE r.retailer_id = d.retailer_id AND r.business_date = :business_date)
             ORDER BY d.retailer_id, d.currency
            """
        ),
        {"business_date": business_date, "platform": PLATFORM},
    ).mappings()
    return [DeductCandidate(**row) for row in rows]


class ComputedDeduction(NamedTuple):  # a NamedTuple: 100,000 of them are built per run
    retailer_id: str
    debt: int
    wallet_balance: int
    amount: int
    limited_by: LimitedBy | None
    skip_reason: SkipReason | None


# The rule of domain/deduction.py::compute_deduction, for every retailer in one statement.
# div() truncates toward zero, which is floor for the non-negative debts that get this far.
COMPUTE_DEDUCTIONS_SQL = sa.text(
    """
    WITH readings AS (
        -- Two strings split by the server: binding 100,000 readings as arrays costs more
        -- (every element adapted in Python) than the whole statement.
        SELECT *
          FROM unnest(string_to_array(:retailer_ids, :separator),
                      CAST(string_to_array(:wallet_balances, ',') AS bigint[]))
               AS r(retailer_id, wallet_balance)
    ), accounts AS MATERIALIZED (
        -- Joined on their own first: the planner cannot estimate the unnest() rows and would
        -- otherwise look settings up row by row instead of hashing.
        SELECT d.retailer_id, d.outstanding_amount AS debt,
               CAST(COALESCE(s.percentage, CAST(:default_percentage AS numeric)) * 100 AS bigint)
                   AS basis_points,
               s.max_daily_amount AS max_daily,
               COALESCE(s.min_wallet_balance, CAST(:default_minimum AS bigint)) AS minimum
          FROM lending.retailer_debts d
          JOIN lending.auto_deduct_settings s ON s.retailer_id = d.retailer_id
         WHERE d.currency = :currency
    ), inputs AS (
        SELECT a.*, r.wallet_balance
          FROM readings r JOIN accounts a ON a.retailer_id = r.retailer_id
    ), bounded AS (
        SELECT *,
               CASE WHEN debt <= 900000000000000 THEN debt * basis_points / 10000  -- no overflow
                    ELSE CAST(div(CAST(debt AS numeric) * basis_points, 10000) AS bigint)
               END AS share,
               wallet_balance - minimum AS headroom
          FROM inputs
    ), decided AS (
        SELECT *,
               CASE WHEN debt <= 0 OR wallet_balance < minimum THEN 0
                    ELSE LEAST(share, COALESCE(max_daily, share), headroom) END AS amount,
               debt <= 0 OR wallet_balance < minimum AS excluded
          FROM bounded
    )
    SELECT retailer_id, debt, wallet_balance, amount,
           CASE WHEN excluded THEN NULL
                WHEN amount = share THEN 'percentage'
                WHEN amount = max_daily THEN 'max_daily'
                ELSE 'minimum_balance' END AS limited_by,
           CASE WHEN debt < 0 THEN 'negative_debt'
                WHEN debt = 0 THEN 'no_debt'
                WHEN wallet_balance < minimum THEN 'wallet_below_minimum'
                WHEN amount > 0 THEN NULL
                WHEN amount = share THEN 'rounds_to_zero'
                WHEN amount = max_daily THEN 'max_daily_zero'
                ELSE 'wallet_at_minimum' END AS skip_reason
      FROM decided
    """
)


def compute_deductions(
    conn: Connection,
    currency: str,
    readings: Sequence[tuple[str, int]],
    *,
    default_percentage: Decimal,
    default_minimum: int,
) -> list[ComputedDeduction]:
    """Today's deduction for every (retailer, wallet balance read from Blnk) against the
    retailer's debt in `currency`, computed in one statement (rows in no particular order)."""
    if not readings:
        return []
    retailer_ids, balances = zip(*readings, strict=True)
    with _collector_paused():
        return _computed(
            conn, currency, retailer_ids, balances, default_percentage, default_minimum
        )


def _computed(
    conn: Connection,
    currency: str,
    retailer_ids: Sequence[str],
    balances: Sequence[int],
    default_percentage: Decimal,
    default_minimum: int,
) -> list[ComputedDeduction]:
    rows = conn.execute(
        COMPUTE_DEDUCTIONS_SQL,
        {
            "currency": currency,
            "retailer_ids": _joined_ids(retailer_ids),
            "separator": ID_SEPARATOR,
            # integers as text; anything else (1.5, True) fails the statement's bigint cast
            "wallet_balances": ",".join(map(str, balances)),
            "default_percentage": default_percentage,
            "default_minimum": default_minimum,
        },
    ).all()  # fetched at once: iterating the result fetches row by row
    limits, reasons = _ENUMS[LimitedBy], _ENUMS[SkipReason]
    return [
        ComputedDeduction(retailer_id, debt, wallet, amount, limits[limited_by], reasons[reason])
        for retailer_id, debt, wallet, amount, limited_by, reason in rows
    ]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while 100,000 result rows become objects: its passes
    over them (they hold no cycles) took as long as the statement itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


ID_SEPARATOR = "\x1f"  # ASCII unit separator: never part of a retailer id (checked)


def _joined_ids(retailer_ids: Sequence[str]) -> str:
    """The ids as one string the statement splits; an id that would not split back to itself
    (empty, or containing the separator) is refused, naming it."""
    joined = ID_SEPARATOR.join(retailer_ids)
    if joined.count(ID_SEPARATOR) != len(retailer_ids) - 1 or not all(retailer_ids):
        bad = next(r for r in retailer_ids if not r or ID_SEPARATOR in r)
        raise ValueError(f"retailer_id {bad!r}: empty or contains the separator \\x1f")
    return joined


# Text from SQL → enum member, by dictionary lookup (100,000 rows: no per-row enum parsing).
_ENUMS = {
    enum: {None: None, **{member.value: member for member in enum}}
    for enum in (LimitedBy, SkipReason)
}
