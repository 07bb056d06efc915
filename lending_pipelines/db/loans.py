"""Loan polling and M-Pesa auto-disbursement: tables and set-based queries (workflow 1).

Partners' Fineract passwords and M-Pesa secrets are stored encrypted (`crypto.SecretBox`) and
only decrypted into `Partner` objects whose repr hides them. Tracked loans are upserted for all
partners in one `INSERT ... SELECT FROM unnest(...) ON CONFLICT` statement; poll attempts are
opened and closed for all partners in one statement each.

Disbursement requests are created here; claiming, attempts, status queries and results live in
`db/disbursement_attempts.py` (an attempt is committed as `unknown` before its B2C call, so a
crash in between leaves a row that a status query settles).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ..crypto import SecretBox
from ..domain.disbursement import STATUSES
from ..partners.fineract import FineractLoan
from .audit import record_audits
from .meta import SCHEMA, metadata

NOW = sa.text("now()")
FILTER_MODES = ("status", "sqlSearch")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    ]


partners = sa.Table(
    "partners",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
    sa.Column("fineract_base_url", sa.Text),
    sa.Column("fineract_tenant_id", sa.Text),
    sa.Column("fineract_username", sa.Text),
    sa.Column("fineract_password_encrypted", sa.Text),
    sa.Column("fineract_filter_mode", sa.Text, nullable=False, server_default="status"),
    sa.Column("mpesa_base_url", sa.Text),
    sa.Column("mpesa_consumer_key", sa.Text),
    sa.Column("mpesa_consumer_secret_encrypted", sa.Text),
    sa.Column("mpesa_shortcode", sa.Text),
    sa.Column("mpesa_initiator_name", sa.Text),
    sa.Column("mpesa_security_credential_encrypted", sa.Text),
    sa.Column("currency", sa.Text, nullable=False, server_default="KES"),
    sa.Column("disbursement_charge_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("wallet_balance_minor", sa.BigInteger, nullable=False, server_default="0"),
    *_timestamps(),
    sa.CheckConstraint(
        "fineract_filter_mode IN ('status', 'sqlSearch')", name="fineract_filter_mode"
    ),
    sa.CheckConstraint("disbursement_charge_minor >= 0", name="charge_not_negative"),
    sa.CheckConstraint("wallet_balance_minor >= 0", name="wallet_not_negative"),
)

auto_disbursal_configs = sa.Table(
    "loan_product_auto_disbursal_configs",
    metadata,
    sa.Column(
        "partner_id",
        sa.Text,
        sa.ForeignKey(partners.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("loan_product_id", sa.BigInteger, primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("enabled_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

loan_tracking = sa.Table(
    "loan_tracking",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("partner_id", sa.Text, sa.ForeignKey(partners.c.id), nullable=False),
    sa.Column("fineract_loan_id", sa.BigInteger, nullable=False),
    sa.Column("account_no", sa.Text),
    sa.Column("external_id", sa.Text),
    sa.Column("client_id", sa.BigInteger),
    sa.Column("client_name", sa.Text),
    sa.Column("loan_product_id", sa.BigInteger),
    sa.Column("product_name", sa.Text),
    sa.Column("status_id", sa.Integer, nullable=False),
    sa.Column("status_value", sa.Text),
    sa.Column("principal", sa.Numeric(24, 6), nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("approved_on", sa.Date),
    sa.Column("expected_disbursement_on", sa.Date),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("last_poll_attempt_id", sa.BigInteger),
    sa.UniqueConstraint("partner_id", "fineract_loan_id"),
    sa.Index("ix_loan_tracking_first_seen_at", "first_seen_at"),
)

poll_attempts = sa.Table(
    "poll_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("partner_id", sa.Text, sa.ForeignKey(partners.c.id), nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("ok", sa.Boolean),
    sa.Column("loans_seen", sa.Integer),
    sa.Column("new_loans", sa.Integer),
    sa.Column("pages", sa.Integer),
    sa.Column("error", sa.Text),
    # totalFilteredRecords as the server reported it, next to the loans its pages really held.
    sa.Column("total_reported", sa.Integer),
    sa.Column("records_received", sa.Integer),
    sa.Column("bad_records", sa.Integer),
    sa.Index("ix_poll_attempts_partner_id_started_at", "partner_id", "started_at"),
    sa.Index("ix_poll_attempts_started_at", "started_at"),
)

disbursement_requests = sa.Table(
    "disbursement_requests",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("partner_id", sa.Text, sa.ForeignKey(partners.c.id), nullable=False),
    sa.Column("fineract_loan_id", sa.BigInteger, nullable=False),
    sa.Column("tranche", sa.Integer, nullable=False, server_default="1"),
    sa.Column("loan_tracking_id", sa.BigInteger, sa.ForeignKey(loan_tracking.c.id), nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("phone_raw", sa.Text),
    sa.Column("phone", sa.Text),
    sa.Column("charge_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("attempt_started_at", sa.DateTime(timezone=True)),
    sa.Column("originator_conversation_id", sa.Text),
    sa.Column("conversation_id", sa.Text),
    sa.Column("mpesa_transaction_id", sa.Text),
    sa.Column("result_code", sa.Text),
    sa.Column("result_desc", sa.Text),
    sa.Column("failure_reason", sa.Text),
    sa.Column("retryable", sa.Boolean, nullable=False, server_default=sa.text("false")),
    sa.Column("submitted_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("status_query_conversation_id", sa.Text),
    sa.Column("status_queries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_status_query_at", sa.DateTime(timezone=True)),
    sa.Column("fineract_recorded_at", sa.DateTime(timezone=True)),
    sa.Column("fineract_transaction_id", sa.BigInteger),
    sa.Column("fineract_error", sa.Text),
    *_timestamps(),
    # 0007: claims, the last status query's acknowledged ids, callback hints, review flag
    sa.Column("claimed_by_pid", sa.Integer),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("status_query_originator_id", sa.Text),
    sa.Column("last_status_query_error", sa.Text),
    sa.Column("result_hint_at", sa.DateTime(timezone=True)),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    sa.Column("needs_review", sa.Text),
    sa.UniqueConstraint("partner_id", "fineract_loan_id", "tranche"),
    sa.UniqueConstraint("originator_conversation_id"),
    sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="status"),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.CheckConstraint(
        "status <> 'succeeded' OR mpesa_transaction_id IS NOT NULL",
        name="succeeded_has_transaction",
    ),
    sa.Index(
        "ix_disbursement_requests_open",
        "status",
        "next_attempt_at",
        postgresql_where=sa.text("status IN ('pending', 'submitted', 'unknown', 'failed')"),
    ),
    sa.Index(
        "ix_disbursement_requests_status_query_conversation_id", "status_query_conversation_id"
    ),
)

disbursement_attempts = sa.Table(
    "disbursement_attempts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "request_id", sa.BigInteger, sa.ForeignKey(disbursement_requests.c.id), nullable=False
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("originator_conversation_id", sa.Text, nullable=False),
    sa.Column("conversation_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default="open"),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("mpesa_transaction_id", sa.Text),
    sa.Column("result_code", sa.Text),
    sa.Column("not_found_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_not_found_at", sa.DateTime(timezone=True)),
    sa.Column("last_not_found_at", sa.DateTime(timezone=True)),
    sa.Column("resends", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_resent_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.UniqueConstraint("originator_conversation_id"),
    sa.UniqueConstraint("request_id", "attempt"),
    sa.CheckConstraint("status IN ('open', 'succeeded', 'failed')", name="status"),
    sa.Index("ix_disbursement_attempts_request_id", "request_id"),
)

disbursement_status_queries = sa.Table(
    "disbursement_status_queries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "request_id", sa.BigInteger, sa.ForeignKey(disbursement_requests.c.id), nullable=False
    ),
    sa.Column("originator_conversation_id", sa.Text, nullable=False),
    sa.Column("query_conversation_id", sa.Text, nullable=False),
    sa.Column("query_originator_id", sa.Text, nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("answered_at", sa.DateTime(timezone=True)),
    sa.Column("verdict", sa.Text),
    sa.UniqueConstraint("query_conversation_id"),
    sa.Index("ix_disbursement_status_queries_request_id", "request_id"),
)

T = f"{SCHEMA}."  # schema prefix for the raw SQL below


# --- partners ------------------------------------------------------------------------------


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


# --- polling -------------------------------------------------------------------------------


def start_poll_attempts(
    conn: Connection, partner_ids: Sequence[str], run_id: str | None
) -> dict[str, int]:
    """Open one poll attempt per partner (one statement); returns partner id → attempt id."""
    if not partner_ids:
        return {}
    rows = conn.execute(
        sa.text(
            f"INSERT INTO {T}poll_attempts (partner_id, run_id) "
            "SELECT p, CAST(:run_id AS text) FROM unnest(CAST(:ids AS text[])) AS p "
            "RETURNING partner_id, id"
        ),
        {"ids": list(partner_ids), "run_id": run_id},
    )
    return {row.partner_id: row.id for row in rows}


@dataclass(frozen=True)
class PollOutcome:
    attempt_id: int
    partner_id: str
    ok: bool
    finished_at: datetime
    loans_seen: int = 0
    new_loans: int = 0
    pages: int = 0
    error: str | None = None


def finish_poll_attempts(conn: Connection, outcomes: Sequence[PollOutcome]) -> None:
    """Close every partner's attempt in one UPDATE ... FROM unnest(...)."""
    if not outcomes:
        return
    conn.execute(
        sa.text(
            f"UPDATE {T}poll_attempts AS p SET finished_at = v.finished_at, ok = v.ok, "
            "loans_seen = v.loans_seen, new_loans = v.new_loans, pages = v.pages, error = v.error "
            "FROM unnest(CAST(:id AS bigint[]), CAST(:finished AS timestamptz[]), "
            "CAST(:ok AS boolean[]), CAST(:seen AS integer[]), CAST(:new AS integer[]), "
            "CAST(:pages AS integer[]), CAST(:error AS text[])) "
            "AS v(id, finished_at, ok, loans_seen, new_loans, pages, error) WHERE p.id = v.id"
        ),
        {
            "id": [o.attempt_id for o in outcomes],
            "finished": [o.finished_at for o in outcomes],
            "ok": [o.ok for o in outcomes],
            "seen": [o.loans_seen for o in outcomes],
            "new": [o.new_loans for o in outcomes],
            "pages": [o.pages for o in outcomes],
            "error": [o.error for o in outcomes],
        },
    )


_UPSERT_LOANS = sa.text(
    f"""
    WITH incoming AS (
        SELECT * FROM unnest(
            CAST(:partner_id AS text[]), CAST(:loan_id AS bigint[]), CAST(:account_no AS text[]),
            CAST(:external_id AS text[]), CAST(:client_id AS bigint[]),
            CAST(:client_name AS text[]), CAST(:product_id AS bigint[]),
            CAST(:product_name AS text[]), CAST(:status_id AS integer[]),
            CAST(:status_value AS text[]), CAST(:principal AS numeric[]),
            CAST(:currency AS text[]), CAST(:approved_on AS date[]),
            CAST(:expected_on AS date[]), CAST(:attempt_id AS bigint[])
        ) AS t(partner_id, fineract_loan_id, account_no, external_id, client_id, client_name,
               loan_product_id, product_name, status_id, status_value, principal, currency,
               approved_on, expected_disbursement_on, last_poll_attempt_id)
    ), upserted AS (
        INSERT INTO {T}loan_tracking (partner_id, fineract_loan_id, account_no, external_id,
            client_id, client_name, loan_product_id, product_name, status_id, status_value,
            principal, currency, approved_on, expected_disbursement_on, last_poll_attempt_id)
        SELECT * FROM incoming
        ON CONFLICT (partner_id, fineract_loan_id) DO UPDATE SET
            account_no = EXCLUDED.account_no,
            external_id = EXCLUDED.external_id,
            client_id = EXCLUDED.client_id,
            client_name = EXCLUDED.client_name,
            loan_product_id = EXCLUDED.loan_product_id,
            product_name = EXCLUDED.product_name,
            status_id = EXCLUDED.status_id,
            status_value = EXCLUDED.status_value,
            principal = EXCLUDED.principal,
            currency = EXCLUDED.currency,
            approved_on = EXCLUDED.approved_on,
            expected_disbursement_on = EXCLUDED.expected_disbursement_on,
            last_poll_attempt_id = EXCLUDED.last_poll_attempt_id,
            last_seen_at = now()
        RETURNING partner_id, (xmax = 0) AS inserted
    )
    SELECT partner_id, count(*) FILTER (WHERE inserted) AS new_loans FROM upserted
    GROUP BY partner_id
    """
)


def upsert_tracked_loans(
    conn: Connection, polled: Sequence[tuple[str, int | None, Sequence[FineractLoan]]]
) -> dict[str, int]:
    """Upsert every polled loan of every partner in ONE statement keyed by (partner, loan id):
    new rows keep `first_seen_at`, existing ones refresh status and `last_seen_at`.
    `polled` is (partner id, poll attempt id, loans). Returns partner id → new loans."""
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "partner_id", "loan_id", "account_no", "external_id", "client_id", "client_name",
            "product_id", "product_name", "status_id", "status_value", "principal", "currency",
            "approved_on", "expected_on", "attempt_id",
        )
    }  # fmt: skip
    for partner_id, attempt_id, loans in polled:
        for loan in {loan.id: loan for loan in loans}.values():
            columns["partner_id"].append(partner_id)
            columns["loan_id"].append(loan.id)
            columns["account_no"].append(loan.account_no)
            columns["external_id"].append(loan.external_id)
            columns["client_id"].append(loan.client_id)
            columns["client_name"].append(loan.client_name)
            columns["product_id"].append(loan.product_id)
            columns["product_name"].append(loan.product_name)
            columns["status_id"].append(loan.status.id)
            columns["status_value"].append(loan.status.value)
            columns["principal"].append(loan.principal)
            columns["currency"].append(loan.currency)
            columns["approved_on"].append(loan.approved_on)
            columns["expected_on"].append(loan.expected_disbursement_on)
            columns["attempt_id"].append(attempt_id)
    if not columns["loan_id"]:
        return {}
    return {row.partner_id: row.new_loans for row in conn.execute(_UPSERT_LOANS, columns)}


# --- disbursements -------------------------------------------------------------------------

_MPESA_CONFIGURED = (
    "p.mpesa_consumer_key IS NOT NULL AND p.mpesa_consumer_secret_encrypted IS NOT NULL "
    "AND p.mpesa_shortcode IS NOT NULL AND p.mpesa_initiator_name IS NOT NULL "
    "AND p.mpesa_security_credential_encrypted IS NOT NULL"
)


def create_disbursement_requests(conn: Connection, run_id: str | None = None) -> list[sa.Row]:
    """One request per newly tracked approved loan whose product has auto-disbursal on and
    whose partner has M-Pesa configured; keyed by (partner, loan, tranche 1), so running it
    again creates nothing. Returns the created rows."""
    created = list(
        conn.execute(
            sa.text(
                f"""
                INSERT INTO {T}disbursement_requests
                    (partner_id, fineract_loan_id, tranche, loan_tracking_id, amount_minor,
                     currency)
                SELECT lt.partner_id, lt.fineract_loan_id, 1, lt.id,
                       round(lt.principal * 100)::bigint, lt.currency
                FROM {T}loan_tracking lt
                JOIN {T}partners p ON p.id = lt.partner_id
                JOIN {T}loan_product_auto_disbursal_configs c
                  ON c.partner_id = lt.partner_id AND c.loan_product_id = lt.loan_product_id
                WHERE lt.status_id = 200 AND lt.principal > 0 AND p.active AND c.enabled
                  AND lt.first_seen_at >= c.enabled_at AND {_MPESA_CONFIGURED}
                ORDER BY lt.id
                ON CONFLICT (partner_id, fineract_loan_id, tranche) DO NOTHING
                RETURNING id, partner_id, fineract_loan_id, amount_minor, currency
                """
            )
        )
    )
    record_audits(
        conn,
        [
            {
                "actor": "loan_disbursements",
                "action": "disbursement.requested",
                "entity": "disbursement_request",
                "entity_id": row.id,
                "new_value": {
                    "partner_id": row.partner_id,
                    "fineract_loan_id": row.fineract_loan_id,
                    "amount_minor": row.amount_minor,
                    "currency": row.currency,
                },
                "run_id": run_id,
            }
            for row in created
        ],
    )
    return created


@dataclass(frozen=True)
class OpenDisbursement:
    id: int
    partner_id: str
    fineract_loan_id: int
    tranche: int
    status: str
    amount_minor: int
    currency: str
    client_id: int | None
    phone: str | None
    attempts: int
    attempt_started_at: datetime | None
    originator_conversation_id: str | None
    charge_minor: int


_OPEN_COLUMNS = (
    "d.id, d.partner_id, d.fineract_loan_id, d.tranche, d.status, d.amount_minor, d.currency, "
    "lt.client_id, d.phone, d.attempts, d.attempt_started_at, d.originator_conversation_id, "
    "d.charge_minor"
)


def _open(rows: Iterable[sa.Row]) -> list[OpenDisbursement]:
    return [OpenDisbursement(**row._mapping) for row in rows]


def defer(conn: Connection, request_id: int, reason: str, until: datetime) -> None:
    """Nothing was sent (Fineract or Daraja unavailable): stay pending until `until`."""
    conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id == request_id, disbursement_requests.c.status == "pending"
        )
        .values(
            failure_reason=reason,
            next_attempt_at=until,
            claimed_by_pid=None,
            claimed_at=None,
            updated_at=sa.func.now(),
        )
    )


def mark_failed(
    conn: Connection,
    request_id: int,
    *,
    reason: str,
    retryable: bool,
    count_attempt: bool = False,
    phone_raw: str | None = None,
    run_id: str | None = None,
    from_statuses: tuple[str, ...] = ("pending",),
) -> None:
    """A failure known before or without an M-Pesa result (invalid phone, loan no longer
    approved, request rejected, wallet short). `count_attempt` counts it against the maximum."""
    conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id == request_id,
            disbursement_requests.c.status.in_(from_statuses),
        )
        .values(
            status="failed",
            claimed_by_pid=None,
            claimed_at=None,
            failure_reason=reason,
            retryable=retryable,
            phone_raw=sa.func.coalesce(phone_raw, disbursement_requests.c.phone_raw),
            attempts=disbursement_requests.c.attempts + (1 if count_attempt else 0),
            resolved_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
    )
    record_audits(
        conn,
        [
            {
                "actor": "loan_disbursements",
                "action": "disbursement.failed",
                "entity": "disbursement_request",
                "entity_id": request_id,
                "new_value": {"status": "failed", "retryable": retryable},
                "reason": reason,
                "run_id": run_id,
            }
        ],
    )
    refund_final_failures(conn)


def refund_final_failures(conn: Connection) -> int:
    """Give the reserved disbursement charge back to the partner wallet for requests that
    failed for good (one statement for all of them)."""
    return conn.execute(
        sa.text(
            f"""
            WITH due AS (
                SELECT id, charge_minor FROM {T}disbursement_requests
                WHERE status = 'failed' AND NOT retryable AND charge_minor > 0
                FOR UPDATE
            ), refunded AS (
                UPDATE {T}disbursement_requests d SET charge_minor = 0, updated_at = now()
                FROM due WHERE d.id = due.id
                RETURNING d.partner_id, due.charge_minor AS refund  -- the value before the update
            ), totals AS (
                SELECT partner_id, sum(refund) AS refund FROM refunded GROUP BY partner_id
            )
            UPDATE {T}partners p SET wallet_balance_minor = wallet_balance_minor + t.refund,
                updated_at = now()
            FROM totals t WHERE p.id = t.partner_id
            """
        )
    ).rowcount


def retryable_failures(conn: Connection) -> list[sa.Row]:
    """Failed requests that may be tried again: (id, attempts, resolved_at)."""
    return list(
        conn.execute(
            sa.select(
                disbursement_requests.c.id,
                disbursement_requests.c.attempts,
                disbursement_requests.c.resolved_at,
            )
            .where(disbursement_requests.c.status == "failed", disbursement_requests.c.retryable)
            .order_by(disbursement_requests.c.id)
        )
    )


def rearm(conn: Connection, request_ids: Sequence[int], run_id: str | None = None) -> int:
    """Start a new attempt for known-failed requests: back to pending with no attempt id, so
    the next submission mints the next OriginatorConversationID."""
    if not request_ids:
        return 0
    rows = list(
        conn.execute(
            sa.update(disbursement_requests)
            .where(
                disbursement_requests.c.id.in_(list(request_ids)),
                disbursement_requests.c.status == "failed",
                disbursement_requests.c.retryable,
            )
            .values(
                status="pending",
                attempt_started_at=None,
                originator_conversation_id=None,
                conversation_id=None,
                status_query_conversation_id=None,
                resolved_at=None,
                next_attempt_at=None,
                updated_at=sa.func.now(),
            )
            .returning(disbursement_requests.c.id, disbursement_requests.c.attempts)
        )
    )
    record_audits(
        conn,
        [
            {
                "actor": "disbursement_retry",
                "action": "disbursement.retry_scheduled",
                "entity": "disbursement_request",
                "entity_id": row.id,
                "new_value": {"status": "pending", "next_attempt": row.attempts + 1},
                "run_id": run_id,
            }
            for row in rows
        ],
    )
    return len(rows)


def give_up(conn: Connection, request_ids: Sequence[int], max_attempts: int) -> int:
    """Stop retrying requests that used every attempt (and refund their charges)."""
    if not request_ids:
        return 0
    count = conn.execute(
        sa.update(disbursement_requests)
        .where(
            disbursement_requests.c.id.in_(list(request_ids)),
            disbursement_requests.c.status == "failed",
        )
        .values(
            retryable=False,
            failure_reason=sa.func.concat(
                disbursement_requests.c.failure_reason,
                f" (stopped after {max_attempts} attempts)",
            ),
            updated_at=sa.func.now(),
        )
    ).rowcount
    refund_final_failures(conn)
    return count


def succeeded_unrecorded(conn: Connection, limit: int = 500) -> list[sa.Row]:
    """Paid disbursements not yet recorded in Fineract."""
    return list(
        conn.execute(
            sa.select(
                disbursement_requests.c.id,
                disbursement_requests.c.partner_id,
                disbursement_requests.c.fineract_loan_id,
                disbursement_requests.c.mpesa_transaction_id,
                disbursement_requests.c.amount_minor,
                disbursement_requests.c.originator_conversation_id,
            )
            .where(
                disbursement_requests.c.status == "succeeded",
                disbursement_requests.c.fineract_recorded_at.is_(None),
                disbursement_requests.c.needs_review.is_(None),
            )
            .order_by(disbursement_requests.c.id)
            .limit(limit)
        )
    )


def mark_recorded_in_fineract(
    conn: Connection, request_id: int, transaction_id: int | None, loan_tracking_status: int = 300
) -> None:
    conn.execute(
        sa.update(disbursement_requests)
        .where(disbursement_requests.c.id == request_id)
        .values(
            fineract_recorded_at=sa.func.now(),
            fineract_transaction_id=transaction_id,
            fineract_error=None,
            updated_at=sa.func.now(),
        )
    )
    conn.execute(
        sa.update(loan_tracking)
        .where(
            loan_tracking.c.id
            == sa.select(disbursement_requests.c.loan_tracking_id)
            .where(disbursement_requests.c.id == request_id)
            .scalar_subquery()
        )
        .values(status_id=loan_tracking_status, status_value="Active")
    )


def mark_fineract_error(conn: Connection, request_id: int, error: str) -> None:
    conn.execute(
        sa.update(disbursement_requests)
        .where(disbursement_requests.c.id == request_id)
        .values(fineract_error=error[:1000], updated_at=sa.func.now())
    )


# --- checks --------------------------------------------------------------------------------


def poll_counts(conn: Connection, since: datetime) -> tuple[int, int]:
    """(successful, failed) finished poll attempts since `since`."""
    row = conn.execute(
        sa.select(
            sa.func.count().filter(poll_attempts.c.ok.is_(True)),
            sa.func.count().filter(poll_attempts.c.ok.is_(False)),
        ).where(poll_attempts.c.started_at >= since, poll_attempts.c.finished_at.is_not(None))
    ).one()
    return int(row[0]), int(row[1])


def partners_failing_since(conn: Connection, cutoff: datetime) -> list[sa.Row]:
    """Partners still being polled whose polls have all failed since before `cutoff`:
    (partner_id, failing_since, failed_polls, last_error)."""
    return list(
        conn.execute(
            sa.text(
                f"""
                WITH last_ok AS (
                    SELECT partner_id, max(started_at) AS at FROM {T}poll_attempts
                    WHERE ok GROUP BY partner_id
                ), streak AS (
                    SELECT a.partner_id, min(a.started_at) AS failing_since, count(*) AS failed,
                           (array_agg(a.error ORDER BY a.started_at DESC))[1] AS last_error,
                           max(a.started_at) AS last_attempt
                    FROM {T}poll_attempts a LEFT JOIN last_ok o ON o.partner_id = a.partner_id
                    WHERE a.ok IS FALSE AND a.started_at > COALESCE(o.at, '-infinity')
                    GROUP BY a.partner_id
                )
                SELECT partner_id, failing_since, failed AS failed_polls, last_error FROM streak
                WHERE failing_since <= :cutoff AND last_attempt > :cutoff
                ORDER BY partner_id
                """
            ),
            {"cutoff": cutoff},
        )
    )


def last_new_loan_at(conn: Connection) -> datetime | None:
    return conn.execute(sa.select(sa.func.max(loan_tracking.c.first_seen_at))).scalar()


def disbursement_outcomes(conn: Connection, since: datetime) -> tuple[int, int]:
    """(succeeded, failed for good) requests resolved since `since`; retryable failures are
    still in play and do not count yet."""
    row = conn.execute(
        sa.select(
            sa.func.count().filter(disbursement_requests.c.status == "succeeded"),
            sa.func.count().filter(
                disbursement_requests.c.status == "failed",
                sa.not_(disbursement_requests.c.retryable),
            ),
        ).where(disbursement_requests.c.resolved_at >= since)
    ).one()
    return int(row[0]), int(row[1])


def stuck_disbursements(conn: Connection, cutoff: datetime) -> list[sa.Row]:
    """Requests without a final outcome since before `cutoff`, and paid ones Fineract has not
    recorded since then."""
    d = disbursement_requests
    return list(
        conn.execute(
            sa.select(d.c.id, d.c.partner_id, d.c.fineract_loan_id, d.c.status, d.c.created_at)
            .where(
                d.c.created_at <= cutoff,
                sa.or_(
                    d.c.status.in_(("pending", "submitted", "unknown")),
                    sa.and_(d.c.status == "succeeded", d.c.fineract_recorded_at.is_(None)),
                ),
            )
            .order_by(d.c.id)
        )
    )
