"""Rotating LENDING_ENCRYPTION_KEY: the new key first, old keys still decrypt, and
`lending secrets rotate` re-encrypts every stored partner secret in one transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from lending_pipelines import cli
from lending_pipelines.crypto import EncryptionKeyError, SecretBox
from lending_pipelines.db import loans as loans_db
from lending_pipelines.db.common import audit_log
from lending_pipelines.db.loans import MpesaCredentials, PartnerSetup
from lending_pipelines.db.secrets import rotate_partner_secrets
from lending_pipelines.settings import get_settings

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
MPESA = MpesaCredentials(
    consumer_key="ck", consumer_secret="cs-plain-secret", shortcode="600981",
    initiator_name="testapi", security_credential="sc-plain-credential",
)  # fmt: skip


def save(conn, partner_id: str, key: str) -> None:
    loans_db.save_partner(
        conn,
        PartnerSetup(
            id=partner_id, name=partner_id, fineract_base_url="http://f.test",
            fineract_tenant_id=partner_id, fineract_username="mifos",
            fineract_password=f"{partner_id}-fineract-password", mpesa=MPESA,
        ),
        SecretBox(key),
    )  # fmt: skip


def stored_secrets(conn) -> dict[str, tuple]:
    rows = conn.execute(
        sa.select(
            loans_db.partners.c.id,
            loans_db.partners.c.fineract_password_encrypted,
            loans_db.partners.c.mpesa_consumer_secret_encrypted,
            loans_db.partners.c.mpesa_security_credential_encrypted,
        )
    ).all()
    return {row.id: tuple(row[1:]) for row in rows}


def test_a_second_key_still_decrypts_what_the_old_key_encrypted():
    token = SecretBox(OLD_KEY).encrypt("pw")
    both = SecretBox(f"{NEW_KEY}, {OLD_KEY}")
    assert both.decrypt(token, "x") == "pw"
    # New values are written with the first key only.
    assert SecretBox(NEW_KEY).decrypt(both.encrypt("pw2"), "x") == "pw2"
    with pytest.raises(EncryptionKeyError):
        SecretBox(OLD_KEY).decrypt(both.encrypt("pw2"), "x")
    assert OLD_KEY not in repr(both) and NEW_KEY not in repr(both)


def test_rotation_reencrypts_every_partner_secret_so_the_old_key_can_be_dropped(db):
    with db.begin() as conn:
        save(conn, "acme", OLD_KEY)
        save(conn, "kilimo", OLD_KEY)
        before = stored_secrets(conn)
        assert rotate_partner_secrets(conn, SecretBox(f"{NEW_KEY},{OLD_KEY}")) == 2
    with db.connect() as conn:
        after = stored_secrets(conn)
        partners = {p.id: p for p in loans_db.pollable_partners(conn, SecretBox(NEW_KEY))}
    assert all(after[p][i] != before[p][i] for p in before for i in range(3))
    assert partners["acme"].config_error is None
    assert partners["acme"].fineract_password == "acme-fineract-password"
    assert partners["kilimo"].mpesa.consumer_secret == "cs-plain-secret"
    assert partners["kilimo"].mpesa.security_credential == "sc-plain-credential"


def test_rotation_with_a_secret_no_key_reads_names_it_and_changes_nothing(db):
    stranger = Fernet.generate_key().decode()
    with db.begin() as conn:
        save(conn, "acme", OLD_KEY)
        save(conn, "kilimo", stranger)
    with db.connect() as conn:
        before = stored_secrets(conn)
    with pytest.raises(EncryptionKeyError) as caught, db.begin() as conn:
        rotate_partner_secrets(conn, SecretBox(f"{NEW_KEY},{OLD_KEY}"))
    assert "partner 'kilimo' fineract_password_encrypted" in str(caught.value)
    assert stranger not in str(caught.value) and OLD_KEY not in str(caught.value)
    with db.connect() as conn:
        assert stored_secrets(conn) == before


@pytest.fixture
def cli_env(monkeypatch, db_url):
    monkeypatch.setenv("LENDING_DATABASE_URL", db_url)
    monkeypatch.setenv("LENDING_ENCRYPTION_KEY", f"{NEW_KEY},{OLD_KEY}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_lending_secrets_rotate_rewrites_the_rows_and_audits_it(db, cli_env, capsys):
    with db.begin() as conn:
        save(conn, "acme", OLD_KEY)
    assert cli.main(["secrets", "rotate", "--actor", "ops@lender"]) == 0
    assert "1 partner(s)" in capsys.readouterr().out
    with db.connect() as conn:
        acme = loans_db.pollable_partners(conn, SecretBox(NEW_KEY))[0]
        audit = conn.execute(sa.select(audit_log)).one()
    assert acme.fineract_password == "acme-fineract-password"
    assert (audit.actor, audit.action) == ("ops@lender", "secrets.rotate")
    assert audit.new_value == {"partners": 1, "keys_configured": 2}


def test_lending_secrets_rotate_fails_cleanly_when_a_key_is_missing(db, cli_env, capsys):
    with db.begin() as conn:
        save(conn, "acme", Fernet.generate_key().decode())
    assert cli.main(["secrets", "rotate"]) == 1
    err = capsys.readouterr().err
    assert "partner 'acme'" in err and "nothing was changed" in err
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar() == 0
