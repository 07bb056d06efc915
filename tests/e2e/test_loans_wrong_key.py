"""A partner whose stored secrets no configured key can decrypt (a wrong or missing
LENDING_ENCRYPTION_KEY) is one clear, alerted error for that partner; the others proceed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from cryptography.fernet import Fernet

from lending_pipelines.crypto import SecretBox
from lending_pipelines.db import loans as loans_db
from lending_pipelines.db.loans import PartnerSetup
from lending_pipelines.settings import get_settings
from lending_pipelines.workflows.loans.disbursement import Disburser
from lending_pipelines.workflows.loans.rules import DisbursementRules
from tests.loans_world import *  # noqa: F403
from tests.loans_world import SENT_ALERTS

TENANTS = [
    {"id": "acme", "password": "acme-pass", "loans": 3, "invalid_phone_every": 0},
    {"id": "kilimo", "password": "kilimo-pass", "loans": 3, "invalid_phone_every": 0},
]
TITLE = "Partner 'kilimo': stored credentials cannot be decrypted"


def add_partner_under_another_key(world) -> None:
    with world.engine.begin() as conn:
        loans_db.save_partner(
            conn,
            PartnerSetup(id="kilimo", name="Kilimo",
                         fineract_base_url=world.sandbox.url("fineract"),
                         fineract_tenant_id="kilimo", fineract_username="mifos",
                         fineract_password="kilimo-pass"),
            SecretBox(Fernet.generate_key().decode()),
        )  # fmt: skip


def test_a_partner_under_another_key_alerts_once_while_the_others_are_tracked(world):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.add_partner("acme")
    add_partner_under_another_key(world)

    for _ in range(3):
        assert world.run("loan_polling_job").success

    assert {r.partner_id for r in world.tracked()} == {"acme"}
    alerts = [a for a in SENT_ALERTS if "credentials" in a["title"]]
    assert [(a["title"], a["severity"]) for a in alerts] == [(TITLE, "critical")]
    assert "LENDING_ENCRYPTION_KEY" in alerts[0]["text"] and "kilimo-pass" not in alerts[0]["text"]


def test_recording_in_fineract_skips_the_unreadable_partner_and_records_the_others(world):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.add_partner("acme", products=())  # nothing paid automatically: requests made below
    add_partner_under_another_key(world)
    assert world.run("loan_polling_job").success  # tracks acme's loans
    t = loans_db.loan_tracking
    with world.engine.begin() as conn:
        conn.execute(
            sa.insert(t).values(partner_id="kilimo", fineract_loan_id=1, status_id=200,
                                principal=Decimal(1000), currency="KES")
        )  # fmt: skip
        for partner in ("kilimo", "acme"):
            tracking_id = conn.execute(
                sa.select(t.c.id).where(t.c.partner_id == partner, t.c.fineract_loan_id == 1)
            ).scalar_one()
            conn.execute(
                sa.insert(loans_db.disbursement_requests).values(
                    partner_id=partner, fineract_loan_id=1, loan_tracking_id=tracking_id,
                    status="succeeded", amount_minor=100_000, currency="KES",
                    mpesa_transaction_id=f"SX{partner.upper()}1", resolved_at=datetime.now(UTC),
                )
            )  # fmt: skip

    settings = get_settings()
    with Disburser(world.engine, SecretBox.from_settings(settings), world.fineract,
                   world.resources()["mpesa"],
                   DisbursementRules.from_settings(settings)) as disburser:  # fmt: skip
        counts = disburser.record_in_fineract()

    assert counts["recorded"] == 1 and counts["credentials_unreadable"] == 1
    recorded = {r.partner_id: r.fineract_recorded_at for r in world.requests()}
    assert recorded["acme"] is not None and recorded["kilimo"] is None
