"""Demo data for workflow 1 (loan polling, M-Pesa auto-disbursement), matching the sandbox.

The Fineract sandbox starts with `DEFAULT_TENANTS` and the Daraja sandbox with `DEFAULT_APPS`;
this seeds one partner per tenant pointing at them:

  acme    60 approved loans, new ones every 30 s, auto-disbursal on products 1 and 2,
          a KES 30 disbursement charge covered by its wallet
  kilimo  25 loans, Fineract 1.9, auto-disbursal on product 1
  jamii   150 loans, auto-disbursal on product 2
  umoja   15 loans on an old Fineract (1.8.4: filtered with sqlSearch), product 1
  duka    configured with a wrong password: every poll fails (and alerts after an hour)

About one client in ten has an unusable phone number, so some disbursements fail with a
recorded reason. Existing partners are left as they are (operators may have changed them).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from ..crypto import SecretBox
from ..db.loans import MpesaCredentials, PartnerSetup, save_partner, set_auto_disbursal
from ..sandbox.fineract import DEFAULT_TENANTS
from ..sandbox.mpesa import DEFAULT_APPS
from ..settings import Settings

NAMES = {
    "acme": "Acme Microfinance",
    "kilimo": "Kilimo Credit SACCO",
    "jamii": "Jamii Lending",
    "umoja": "Umoja Savings (legacy Mifos)",
    "duka": "Duka Finance",
}
AUTO_DISBURSAL_PRODUCTS = {"acme": [1, 2], "kilimo": [1], "jamii": [2], "umoja": [1]}
WRONG_PASSWORD = {"duka"}
CHARGES = {"acme": (3_000, 5_000_000)}  # (charge per disbursement, wallet) in KES cents


def demo_partners(settings: Settings) -> list[PartnerSetup]:
    apps = {app["consumer_key"].removesuffix("-consumer-key"): app for app in DEFAULT_APPS}
    partners = []
    for tenant in DEFAULT_TENANTS:
        tenant_id = tenant["id"]
        app = apps.get(tenant_id)
        charge, wallet = CHARGES.get(tenant_id, (0, 0))
        old_server = tuple(int(x) for x in tenant.get("version", "1.10").split(".")[:2]) < (1, 9)
        partners.append(
            PartnerSetup(
                id=tenant_id,
                name=NAMES.get(tenant_id, tenant_id),
                fineract_base_url=f"{settings.sandbox_url}/fineract",
                fineract_tenant_id=tenant_id,
                fineract_username=tenant.get("username", "mifos"),
                fineract_password=(
                    "not-the-password" if tenant_id in WRONG_PASSWORD else tenant["password"]
                ),
                fineract_filter_mode="sqlSearch" if old_server else "status",
                mpesa=MpesaCredentials(
                    consumer_key=app["consumer_key"],
                    consumer_secret=app["consumer_secret"],
                    shortcode=app["shortcode"],
                    initiator_name=app["initiator_name"],
                    security_credential=app["security_credential"],
                )
                if app
                else None,
                disbursement_charge_minor=charge,
                wallet_balance_minor=wallet,
            )
        )
    return partners


def seed_loans(conn: Connection, settings: Settings) -> None:
    """Idempotent: partners are inserted once; auto-disbursal settings are (re)applied."""
    box = SecretBox.from_settings(settings)
    for partner in demo_partners(settings):
        save_partner(conn, partner, box, overwrite=False)
    for partner_id, products in AUTO_DISBURSAL_PRODUCTS.items():
        set_auto_disbursal(conn, partner_id, products, enabled=True)
