"""Workflow 1's tables: partners (secrets encrypted), auto-disbursal configs, tracked loans,
poll attempts, disbursement requests, their attempts and status queries."""

from __future__ import annotations

import sqlalchemy as sa

from ...domain.disbursement import STATUSES
from ..meta import SCHEMA, metadata

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
