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
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ..db.escrow import (
    PLATFORM,
    auto_deduct_settings,
    create_escrows,
    retailer_debts,
    upsert_blnk_accounts,
)
from ..settings import Settings

CURRENCY = "RWF"
ESCROW_POOL = "bln_demo_escrow_pool_rwf"
REPAYMENT_POOL = "bln_demo_repayment_pool_rwf"
WHOLESALERS = {"W-001": "bln_demo_wholesaler_w001", "W-002": "bln_demo_wholesaler_w002"}

# order id → (wholesaler, amount, days since creation, status, hours until auto-release or None)
ESCROWS: dict[str, tuple[str, int, int, str, int | None]] = {
    "ORD-1001": ("W-001", 150_000, 8, "held", None),
    "ORD-1002": ("W-002", 90_000, 10, "held", None),
    "ORD-1003": ("W-001", 60_000, 2, "held", None),
    "ORD-1004": ("W-002", 75_000, 9, "disputed", None),
    "ORD-1005": ("W-404", 40_000, 8, "held", None),
    "ORD-1006": ("W-001", 20_000, 1, "held", 1),
    "ORD-1007": ("W-002", 30_000, 9, "refunded", None),
}

# retailer → (debt currency, debt, wallet balance or None, enabled, percentage, max daily)
RETAILERS: dict[str, tuple[str, int, int | None, bool, Decimal | None, int | None]] = {
    "R-001": ("RWF", 100_000, 200_000, True, None, 50_000),
    "R-002": ("RWF", 100_000, 200_000, True, None, 20_000),
    "R-003": ("RWF", 100_000, 25_000, True, None, None),
    "R-004": ("RWF", 50_000, 8_000, True, None, None),
    "R-005": ("RWF", 100_000, 10_000, True, None, None),
    "R-006": ("RWF", 80_000, 120_000, False, None, None),
    "R-007": ("RWF", -5_000, 50_000, True, None, None),
    "R-008": ("XYZ", 40_000, 60_000, True, None, None),
    "R-009": ("RWF", 10_000, 100_000, True, Decimal(50), None),
    "R-010": ("RWF", 70_000, None, True, None, None),
    "R-011": ("RWF", 3, 50_000, True, None, None),
    "R-012": ("KES", 5_000, 60_000, True, None, None),
}


def wallet_balance_id(retailer_id: str) -> str:
    return f"bln_demo_wallet_{retailer_id.lower().replace('-', '')}"


def _held_in_pool() -> int:
    return sum(amount for _, amount, _, status, _ in ESCROWS.values() if status != "refunded")


DEMO_BLNK_BALANCES: list[dict] = [
    {
        "balance_id": ESCROW_POOL,
        "currency": CURRENCY,
        "balance": _held_in_pool(),
        "meta_data": {"role": "escrow_pool"},
    },
    {
        "balance_id": REPAYMENT_POOL,
        "currency": CURRENCY,
        "balance": 0,
        "meta_data": {"role": "repayment_pool"},
    },
    *[
        {
            "balance_id": balance_id,
            "currency": CURRENCY,
            "balance": 0,
            "meta_data": {"wholesaler_id": wholesaler},
        }
        for wholesaler, balance_id in WHOLESALERS.items()
    ],
    *[
        {
            "balance_id": wallet_balance_id(retailer),
            "currency": CURRENCY,
            "balance": wallet,
            "meta_data": {"retailer_id": retailer},
        }
        for retailer, (_, _, wallet, _, _, _) in RETAILERS.items()
        if wallet is not None
    ],
]


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
