"""Demo data for workflow 4 (escrow release, wallet auto-deduct), one case per rule.

The same world exists on both sides: `seed_escrow` writes the database rows and the Blnk
sandbox starts with `DEMO_BLNK_BALANCES` (fixed balance ids, funded from @World), so `make dev`
needs no ledger calls to seed. Against a real Blnk you would map real balance ids instead.

Expected outcome of the first auto-deduct (RWF, 30 %, minimum wallet 10,000):
  R-001 30,000 (30 % of debt)      R-002 20,000 (max daily)       R-003 15,000 (keeps 10,000)
  R-004 skipped (wallet below min) R-005 skipped (wallet at min)  R-006 not enabled
  R-007 skipped (negative debt)    R-008 skipped (unknown currency)
  R-009 5,000 (own 50 %)           R-010 skipped (no wallet)      R-011 skipped (rounds to 0)
  R-012 skipped (debt not in the wallet currency)
Escrows: ORD-1001, ORD-1002, ORD-1006 are due and released; ORD-1003 is not due; ORD-1004 is
disputed; ORD-1005's wholesaler has no balance (skipped); ORD-1007 was refunded.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from lending_pipelines.db.escrow import (
    PLATFORM,
    auto_deduct_settings,
    create_escrows,
    retailer_debts,
    upsert_blnk_accounts,
)
from lending_pipelines.settings import Settings

from ..demo import (
    CURRENCY,
    ESCROW_POOL,
    ESCROWS,
    REPAYMENT_POOL,
    RETAILERS,
    WHOLESALERS,
    wallet_balance_id,
)


def seed_escrow(conn: Connection, settings: Settings) -> None:
    """Idempotent: existing rows are left as they are (released escrows stay released,
    reduced debts stay reduced)."""
    upsert_blnk_accounts(
        conn,
        [
            {
                "owner_type": "escrow_pool",
                "owner_id": PLATFORM,
                "currency": CURRENCY,
                "balance_id": ESCROW_POOL,
            },
            {
                "owner_type": "repayment_pool",
                "owner_id": PLATFORM,
                "currency": CURRENCY,
                "balance_id": REPAYMENT_POOL,
            },
            *[
                {
                    "owner_type": "wholesaler",
                    "owner_id": wholesaler,
                    "currency": CURRENCY,
                    "balance_id": balance_id,
                }
                for wholesaler, balance_id in WHOLESALERS.items()
            ],
            *[
                {
                    "owner_type": "retailer_wallet",
                    "owner_id": retailer,
                    "currency": CURRENCY,
                    "balance_id": wallet_balance_id(retailer),
                }
                for retailer, (_, _, wallet, _, _, _) in RETAILERS.items()
                if wallet is not None
            ],
        ],
    )
    now = conn.execute(sa.select(sa.func.now())).scalar_one()
    rows = []
    for order_id, (wholesaler, amount, age_days, status, release_hours) in ESCROWS.items():
        created_at = now - timedelta(days=age_days)
        row = {
            "order_id": order_id,
            "retailer_id": "R-001",
            "wholesaler_id": wholesaler,
            "amount": amount,
            "currency": CURRENCY,
            "status": status,
            "created_at": created_at,
        }
        if release_hours is not None:
            row["auto_release_at"] = created_at + timedelta(hours=release_hours)
        if status == "disputed":
            row |= {"disputed_at": now, "status_reason": "demo: goods not delivered"}
        if status == "refunded":
            row |= {"status_reason": "demo: order cancelled"}
        rows.append(row)
    create_escrows(conn, rows, settings.escrow_release_days)
    conn.execute(
        insert(retailer_debts)
        .values(
            [
                {"retailer_id": retailer, "currency": currency, "outstanding_amount": debt}
                for retailer, (currency, debt, _, _, _, _) in RETAILERS.items()
            ]
        )
        .on_conflict_do_nothing()
    )
    conn.execute(
        insert(auto_deduct_settings)
        .values(
            [
                {
                    "retailer_id": retailer,
                    "enabled": enabled,
                    "percentage": percentage,
                    "max_daily_amount": max_daily,
                }
                for retailer, (_, _, _, enabled, percentage, max_daily) in RETAILERS.items()
            ]
        )
        .on_conflict_do_nothing()
    )
