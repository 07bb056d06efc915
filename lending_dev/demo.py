"""The demo world `make dev` starts with, shared by the partner sandbox and the seeds.

Both sides of each partner are described here once: the sandbox serves these tenants, apps,
accounts and balances, and the seeds write the database rows that point at them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# -- Fineract (workflow 1) ---------------------------------------------------------------------

# The tenants `make dev` starts with: different sizes, one old server (sqlSearch), and `duka`,
# which the seeded partner row deliberately configures with a wrong password.
# The demo starts healthy: every phone number is payable (faults are injected on purpose, see
# `invalid_phones` below and `lending seed --faults`).
DEFAULT_TENANTS: list[dict[str, Any]] = [
    {"id": "acme", "password": "acme-pass", "loans": 60, "new_loans_per_minute": 2,
     "invalid_phone_every": 0},
    {"id": "kilimo", "password": "kilimo-pass", "loans": 25, "new_loans_per_minute": 1,
     "version": "1.9.0", "invalid_phone_every": 0},
    {"id": "jamii", "password": "jamii-pass", "loans": 150, "new_loans_per_minute": 0.5,
     "invalid_phone_every": 0},
    {"id": "umoja", "password": "umoja-pass", "loans": 15, "new_loans_per_minute": 0.5,
     "version": "1.8.4", "invalid_phone_every": 0},
    {"id": "duka", "password": "duka-pass", "loans": 10, "invalid_phone_every": 0},
]  # fmt: skip


# -- M-Pesa Daraja (workflow 1) ----------------------------------------------------------------

DEFAULT_APPS: list[dict[str, str]] = [
    {
        "consumer_key": f"{name}-consumer-key",
        "consumer_secret": f"{name}-consumer-secret",
        "shortcode": shortcode,
        "initiator_name": "testapi",
        "security_credential": f"{name}-security-credential",
    }
    for name, shortcode in (
        ("acme", "600981"),
        ("kilimo", "600982"),
        ("jamii", "600983"),
        ("umoja", "600984"),
        ("duka", "600985"),
    )
]


# -- Stripe Connect (workflow 2) ---------------------------------------------------------------

# Connected accounts every fresh sandbox knows: the seed data (`lending seed`) points its
# creators at these, one per situation the payout workflow must handle.
DEV_CONNECT_ACCOUNTS: list[dict[str, Any]] = [
    {"id": "acct_1DevCreatorReady01", "email": "ada@creators.example"},
    {"id": "acct_1DevCreatorReady02", "email": "bola@creators.example"},
    {"id": "acct_1DevCreatorReady03", "email": "chen@creators.example"},
    {"id": "acct_1DevCreatorHold004", "email": "dara@creators.example"},
    {"id": "acct_1DevCreatorSmall05", "email": "eli@creators.example"},
    {"id": "acct_1DevCreatorRqst006", "email": "fola@creators.example"},
    {
        "id": "acct_1DevCreatorNoPay07",
        "email": "gus@creators.example",
        "payouts_enabled": False,
        "currently_due": ["external_account"],
        "disabled_reason": "requirements.past_due",
    },
    {
        "id": "acct_1DevCreatorRestr08",
        "email": "hana@creators.example",
        "payouts_enabled": False,
        "transfers": "inactive",
        "past_due": ["individual.verification.document"],
        "disabled_reason": "requirements.past_due",
    },
    {"id": "acct_1DevCreatorNoKyc09", "email": "ivo@creators.example"},
]


# -- Twilio WhatsApp (notifications) -----------------------------------------------------------

DEV_ACCOUNT_SID = "AC" + "0d" * 16
DEV_AUTH_TOKEN = "dev-sandbox-twilio-auth-token-000"


# -- Blnk escrow and wallets (workflow 4) ------------------------------------------------------

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
