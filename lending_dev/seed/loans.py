"""Demo data for workflow 1 (loan polling, M-Pesa auto-disbursement), matching the sandbox.

The Fineract sandbox starts with `DEFAULT_TENANTS` and the Daraja sandbox with `DEFAULT_APPS`;
this seeds one partner per tenant pointing at them:

  acme    60 approved loans, new ones every 30 s, auto-disbursal on products 1 and 2,
          a KES 30 disbursement charge covered by its wallet
  kilimo  25 loans, Fineract 1.9, auto-disbursal on product 1
  jamii   150 loans, auto-disbursal on product 2
  umoja   15 loans on an old Fineract (1.8.4: filtered with sqlSearch), product 1
  duka    10 loans, no auto-disbursal

The demo starts healthy. `inject_demo_faults` (`lending seed --faults`) then gives duka a wrong
password (every poll fails with 401, and alerts after LENDING_PARTNER_FAILING_MINUTES) and makes
every third new acme client's phone unusable (those disbursements fail with a masked reason).
Existing partners are left as they are (operators may have changed them).
"""

from __future__ import annotations

import dataclasses

import httpx
from sqlalchemy.engine import Connection

from lending_pipelines.crypto import SecretBox
from lending_pipelines.db.loans import (
    MpesaCredentials,
    PartnerSetup,
    save_partner,
    set_auto_disbursal,
)
from lending_pipelines.settings import Settings

from ..demo import DEFAULT_APPS, DEFAULT_TENANTS

NAMES = {
    "acme": "Acme Microfinance",
    "kilimo": "Kilimo Credit SACCO",
    "jamii": "Jamii Lending",
    "umoja": "Umoja Savings (legacy Mifos)",
    "duka": "Duka Finance",
}
AUTO_DISBURSAL_PRODUCTS = {"acme": [1, 2], "kilimo": [1], "jamii": [2], "umoja": [1]}
FAULTY_PARTNER = "duka"
INVALID_PHONE_TENANT, INVALID_PHONE_EVERY = "acme", 3
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
                fineract_password=tenant["password"],
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


def inject_demo_faults(conn: Connection, settings: Settings) -> list[str]:
    """Break the demo on purpose, to watch checks and alerts work; returns what was done."""
    [duka] = [p for p in demo_partners(settings) if p.id == FAULTY_PARTNER]
    box = SecretBox.from_settings(settings)
    save_partner(conn, dataclasses.replace(duka, fineract_password="not-the-password"), box)
    done = [f"partner {FAULTY_PARTNER!r} polls with a wrong password (401)"]
    try:
        httpx.post(
            f"{settings.sandbox_url}/_admin/fineract/configure",
            json={"invalid_phones": {"tenant": INVALID_PHONE_TENANT, "every": INVALID_PHONE_EVERY}},
            timeout=5,
        ).raise_for_status()
    except httpx.HTTPError as exc:
        done.append(f"sandbox not reached ({type(exc).__name__}): phones left valid")
    else:
        tenant, every = INVALID_PHONE_TENANT, INVALID_PHONE_EVERY
        done.append(f"every {every}rd new {tenant!r} client has an unusable phone")
    return done
