"""Demo data for workflow 3 (creator payouts), one creator per situation the rules handle.

The same world exists on both sides: `seed_payouts` writes creators, token ledger entries and a
withdrawal request, and the Stripe sandbox starts with `DEV_CONNECT_ACCOUNTS` (fixed account ids,
some with payouts disabled or restricted), so `make dev` needs no Stripe calls to seed.

Ledger dates are relative to the last payout date before the first seeding (the "anchor"); a
backfill of that date in the Dagster UI pays, at 0.05 USD per token and a 200-token minimum:

  CR-001 Ada    2,400 tokens → USD 120.00     CR-002 Bola   850 (after a chargeback) → USD 42.50
  CR-003 Chen   640, earned exactly 7 days before → USD 32.00 (the hold has just ended)
  CR-004 Dara   held for chargebacks (earned 3 days before)
  CR-005 Eli    below the minimum (150)        CR-006 Fola   requested 500 of 2,000 → USD 25.00
  CR-007 Gus    payouts disabled at Stripe      CR-008 Hana   restricted at Stripe (transfers off)
  CR-009 Ivo    KYC not verified                CR-010 Juno   no Connect account
Re-running the seed adds nothing (creators by external_ref, entries by reference).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lending_pipelines.db.payouts import (
    add_ledger_entries,
    add_withdrawal_requests,
    creators,
    ledger_entries,
    upsert_creators,
    withdrawal_requests,
)
from lending_pipelines.settings import Settings

from ..demo import DEV_CONNECT_ACCOUNTS

ACCOUNTS = {spec["email"]: spec["id"] for spec in DEV_CONNECT_ACCOUNTS}

# external_ref, name, email, kyc, has account, ledger [(entry type, tokens, days before anchor)]
CREATORS = [
    (
        "CR-001",
        "Ada",
        "ada@creators.example",
        "verified",
        True,
        [("earning", 1_500, 40), ("earning", 900, 20)],
    ),
    (
        "CR-002",
        "Bola",
        "bola@creators.example",
        "verified",
        True,
        [("earning", 1_000, 30), ("chargeback", -150, 10)],
    ),
    ("CR-003", "Chen", "chen@creators.example", "verified", True, [("earning", 640, 7)]),
    (
        "CR-004",
        "Dara",
        "dara@creators.example",
        "verified",
        True,
        [("earning", 100, 20), ("earning", 900, 3)],
    ),
    ("CR-005", "Eli", "eli@creators.example", "verified", True, [("earning", 150, 25)]),
    ("CR-006", "Fola", "fola@creators.example", "verified", True, [("earning", 2_000, 30)]),
    ("CR-007", "Gus", "gus@creators.example", "verified", True, [("earning", 1_200, 30)]),
    ("CR-008", "Hana", "hana@creators.example", "verified", True, [("earning", 800, 30)]),
    ("CR-009", "Ivo", "ivo@creators.example", "pending", True, [("earning", 3_000, 30)]),
    ("CR-010", "Juno", "juno@creators.example", "verified", False, [("earning", 500, 30)]),
]
REQUESTS = [("CR-006", 500, 2)]  # external_ref, tokens, days before anchor


def last_payout_date(now: datetime) -> datetime:
    """The most recent 1st/15th 02:00 UTC at or before `now`."""
    now = now.astimezone(UTC)
    candidates = []
    for month_back in (0, 1):
        year, month = now.year, now.month - month_back
        if month == 0:
            year, month = year - 1, 12
        for day in (1, 15):
            candidates.append(datetime(year, month, day, 2, tzinfo=UTC))
    return max(c for c in candidates if c <= now)


def seed_payouts(conn: Connection, settings: Settings) -> None:
    ids = upsert_creators(
        conn,
        [
            {
                "external_ref": ref,
                "display_name": name,
                "email": email,
                "kyc_status": kyc,
                "stripe_account_id": ACCOUNTS[email] if has_account else None,
                # The stored state may be stale; the payout run refreshes it from Stripe.
                "payouts_enabled": has_account,
                "transfers_capability": "active" if has_account else None,
            }
            for ref, name, email, kyc, has_account, _ in CREATORS
        ],
    )
    seeded = set(
        conn.execute(
            sa.select(ledger_entries.c.reference).where(ledger_entries.c.reference.like("seed:%"))
        ).scalars()
    )
    anchor = conn.execute(
        sa.select(sa.func.min(creators.c.created_at)).where(creators.c.external_ref.like("CR-%"))
    ).scalar_one()
    anchor = last_payout_date(anchor or datetime.now(UTC))
    rows = []
    for ref, _, _, _, _, entries in CREATORS:
        for number, (entry_type, tokens, days) in enumerate(entries, start=1):
            reference = f"seed:{ref}:{number}"
            if reference in seeded:
                continue
            rows.append(
                {
                    "creator_id": ids[ref],
                    "entry_type": entry_type,
                    "tokens": tokens,
                    "created_at": anchor - timedelta(days=days),
                    "reference": reference,
                    "description": f"demo {entry_type}",
                }
            )
    add_ledger_entries(conn, rows, hold_days=settings.payout_hold_days)
    requested = set(
        conn.execute(
            sa.select(withdrawal_requests.c.creator_id).where(
                withdrawal_requests.c.creator_id.in_([ids[ref] for ref, _, _ in REQUESTS])
            )
        ).scalars()
    )
    add_withdrawal_requests(
        conn,
        [
            {
                "creator_id": ids[ref],
                "tokens": tokens,
                "requested_at": anchor - timedelta(days=days),
            }
            for ref, tokens, days in REQUESTS
            if ids[ref] not in requested
        ],
    )
