"""Re-encrypting the secrets stored in the database with the current encryption key."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from ..crypto import SecretBox
from .loans import partners

ENCRYPTED_PARTNER_COLUMNS = (
    "fineract_password_encrypted",
    "mpesa_consumer_secret_encrypted",
    "mpesa_security_credential_encrypted",
)


def rotate_partner_secrets(conn: Connection, box: SecretBox) -> int:
    """Re-encrypt every partner secret with `box`'s first key; returns the partners rewritten.

    All rows are locked and rewritten in the caller's transaction: one secret that no key can
    read raises `EncryptionKeyError` naming the partner and column, and nothing is changed.
    """
    columns = [partners.c[name] for name in ENCRYPTED_PARTNER_COLUMNS]
    rows = conn.execute(
        sa.select(partners.c.id, *columns).order_by(partners.c.id).with_for_update()
    ).all()
    updates = [
        {
            "partner_id": row.id,
            **{
                name: box.rotate(getattr(row, name), f"partner {row.id!r} {name}")
                for name in ENCRYPTED_PARTNER_COLUMNS
            },
        }
        for row in rows
    ]
    if updates:
        conn.execute(
            partners.update()
            .where(partners.c.id == sa.bindparam("partner_id"))
            .values(
                {name: sa.bindparam(name) for name in ENCRYPTED_PARTNER_COLUMNS}
                | {"updated_at": sa.func.now()}
            ),
            updates,
        )
    return len(updates)
