"""Partners: saved with their secrets encrypted (`crypto.SecretBox`), read back decrypted into
`Partner` objects whose repr hides them (or with `config_error` saying why not); auto-disbursal
per (partner, product)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ...crypto import SecretBox
from .tables import (
    FILTER_MODES,
    auto_disbursal_configs,
    partners,
)


@dataclass(frozen=True)
class MpesaCredentials:
    consumer_key: str
    consumer_secret: str = field(repr=False)
    shortcode: str = ""
    initiator_name: str = ""
    security_credential: str = field(default="", repr=False)
    base_url: str | None = None


@dataclass(frozen=True)
class PartnerSetup:
    """A partner as an operator configures it (plaintext secrets; encrypted when saved)."""

    id: str
    name: str
    fineract_base_url: str | None = None
    fineract_tenant_id: str | None = None
    fineract_username: str | None = None
    fineract_password: str | None = field(default=None, repr=False)
    fineract_filter_mode: str = "status"
    mpesa: MpesaCredentials | None = None
    active: bool = True
    currency: str = "KES"
    disbursement_charge_minor: int = 0
    wallet_balance_minor: int = 0


@dataclass(frozen=True)
class Partner:
    """A partner as the workflow uses it: decrypted, or with `config_error` saying why not."""

    id: str
    name: str
    fineract_base_url: str | None
    fineract_tenant_id: str | None
    fineract_username: str | None
    fineract_password: str | None = field(repr=False)
    fineract_filter_mode: str
    mpesa: MpesaCredentials | None
    currency: str
    config_error: str | None = None


def save_partner(
    conn: Connection, setup: PartnerSetup, box: SecretBox, *, overwrite: bool = True
) -> None:
    """Insert or (with `overwrite`) update a partner; secrets are encrypted with `box`."""
    if setup.fineract_filter_mode not in FILTER_MODES:
        raise ValueError(
            f"partner {setup.id!r}: fineract_filter_mode {setup.fineract_filter_mode!r} is not "
            f"one of {FILTER_MODES}"
        )
    mpesa = setup.mpesa
    values: dict[str, Any] = {
        "id": setup.id,
        "name": setup.name,
        "active": setup.active,
        "fineract_base_url": setup.fineract_base_url,
        "fineract_tenant_id": setup.fineract_tenant_id,
        "fineract_username": setup.fineract_username,
        "fineract_password_encrypted": box.encrypt(setup.fineract_password),
        "fineract_filter_mode": setup.fineract_filter_mode,
        "mpesa_base_url": mpesa.base_url if mpesa else None,
        "mpesa_consumer_key": mpesa.consumer_key if mpesa else None,
        "mpesa_consumer_secret_encrypted": box.encrypt(mpesa.consumer_secret) if mpesa else None,
        "mpesa_shortcode": mpesa.shortcode if mpesa else None,
        "mpesa_initiator_name": mpesa.initiator_name if mpesa else None,
        "mpesa_security_credential_encrypted": (
            box.encrypt(mpesa.security_credential) if mpesa else None
        ),
        "currency": setup.currency,
        "disbursement_charge_minor": setup.disbursement_charge_minor,
        "wallet_balance_minor": setup.wallet_balance_minor,
    }
    stmt = insert(partners).values(**values)
    if overwrite:
        updates = {k: v for k, v in values.items() if k != "id"} | {"updated_at": sa.func.now()}
        stmt = stmt.on_conflict_do_update(index_elements=[partners.c.id], set_=updates)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=[partners.c.id])
    conn.execute(stmt)


def set_auto_disbursal(
    conn: Connection, partner_id: str, loan_product_ids: Iterable[int], enabled: bool = True
) -> None:
    """Turn auto-disbursal on/off for products. Only loans first seen after `enabled_at` are
    paid automatically, so switching it on never pays out a backlog of older approved loans."""
    rows = [
        {
            "partner_id": partner_id,
            "loan_product_id": int(product),
            "enabled": enabled,
            "enabled_at": sa.func.now() if enabled else None,
        }
        for product in loan_product_ids
    ]
    if not rows:
        return
    stmt = insert(auto_disbursal_configs).values(rows)
    configs = auto_disbursal_configs.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[configs.partner_id, configs.loan_product_id],
            set_={
                "enabled": stmt.excluded.enabled,
                # switching on stamps now; staying on keeps the original stamp; off clears it
                "enabled_at": sa.case(
                    (sa.and_(stmt.excluded.enabled, sa.not_(configs.enabled)), sa.func.now()),
                    (stmt.excluded.enabled, configs.enabled_at),
                    else_=None,
                ),
                "updated_at": sa.func.now(),
            },
        )
    )


def _partner_from_row(row: sa.Row, box: SecretBox) -> Partner:
    def secret(column: str) -> str | None:
        return box.decrypt(getattr(row, column), f"partner {row.id!r} {column}")

    error = None
    password = consumer_secret = credential = None
    try:
        password = secret("fineract_password_encrypted")
        consumer_secret = secret("mpesa_consumer_secret_encrypted")
        credential = secret("mpesa_security_credential_encrypted")
    except Exception as exc:  # noqa: BLE001 - one partner's bad secret must not stop the others
        error = str(exc)
    mpesa = None
    if row.mpesa_consumer_key and consumer_secret and row.mpesa_shortcode and credential:
        mpesa = MpesaCredentials(
            consumer_key=row.mpesa_consumer_key,
            consumer_secret=consumer_secret,
            shortcode=row.mpesa_shortcode,
            initiator_name=row.mpesa_initiator_name or "",
            security_credential=credential,
            base_url=row.mpesa_base_url,
        )
    return Partner(
        id=row.id,
        name=row.name,
        fineract_base_url=row.fineract_base_url,
        fineract_tenant_id=row.fineract_tenant_id,
        fineract_username=row.fineract_username,
        fineract_password=password,
        fineract_filter_mode=row.fineract_filter_mode,
        mpesa=mpesa,
        currency=row.currency,
        config_error=error,
    )


def pollable_partners(conn: Connection, box: SecretBox) -> list[Partner]:
    """Active partners with a complete Fineract configuration, in id order."""
    rows = conn.execute(
        sa.select(partners)
        .where(
            partners.c.active,
            partners.c.fineract_base_url.is_not(None),
            partners.c.fineract_tenant_id.is_not(None),
            partners.c.fineract_username.is_not(None),
            partners.c.fineract_password_encrypted.is_not(None),
        )
        .order_by(partners.c.id)
    )
    return [_partner_from_row(row, box) for row in rows]


def partners_by_id(conn: Connection, box: SecretBox, ids: Iterable[str]) -> dict[str, Partner]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(partners).where(partners.c.id.in_(wanted)))
    return {row.id: _partner_from_row(row, box) for row in rows}
