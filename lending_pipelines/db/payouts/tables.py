"""Creator payouts: the tables (workflow 3).

Tokens live in `ledger_entries` (earning, withdrawal_completed, chargeback, adjustment; signed
token amounts; `available_at` = created_at + the chargeback hold for earnings). A payout date
is evaluated once (`payout_evaluations` + one row per relevant creator in `payout_eligibility`,
with the reason when not eligible), then frozen into one `payout_batches` row (unique payout
date and batch hash) and one `payout_items` row per creator (unique idempotency key
`payouts-<date>:<creator>`), assigned to chunks of `chunk_size` (`payout_chunks`).

Claiming chunks and items, and recording what Stripe answered, is in `work`; claiming a
creator's tokens across payout dates in `claims`; the queries by concern in `ledger`,
`eligibility`, `batches` and `items`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from ...domain import payouts as rules
from ..meta import metadata

NOW = sa.text("now()")
FALSE = sa.text("false")

KYC_STATUSES = ("pending", "verified", "rejected")
ITEM_STATUSES = ("pending", "processing", "paid", "failed", "reversed")
OPEN_ITEM_STATUSES = ("pending", "processing", "failed")  # tokens reserved, not yet debited
BATCH_STATUSES = ("processing", "completed", "completed_with_failures")
REQUEST_STATUSES = ("pending", "in_batch", "completed", "cancelled")
CHUNK_STATUSES = ("pending", "done")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


creators = sa.Table(
    "creators",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("external_ref", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("kyc_status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("stripe_account_id", sa.Text),
    sa.Column("payouts_enabled", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("transfers_capability", sa.Text),
    sa.Column("account_requirements_due", JSONB),
    sa.Column("account_disabled_reason", sa.Text),
    sa.Column("account_checked_at", sa.DateTime(timezone=True)),
    sa.Column("account_event_at", sa.DateTime(timezone=True)),  # last account.updated applied
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("external_ref"),
    sa.UniqueConstraint("stripe_account_id"),
    sa.CheckConstraint(_in("kyc_status", KYC_STATUSES), name="kyc_status"),
)

payout_batches = sa.Table(
    "payout_batches",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("payout_date", sa.Date, nullable=False),
    sa.Column("batch_hash", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="processing"),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("token_rate", sa.Numeric(18, 8), nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pending_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("paid_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("total_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("paid_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failed_amount_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_by_run_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("payout_date"),
    sa.UniqueConstraint("batch_hash"),
    sa.CheckConstraint(_in("status", BATCH_STATUSES), name="status"),
)

payout_items = sa.Table(
    "payout_items",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey(payout_batches.c.id), nullable=False),
    sa.Column("creator_id", sa.BigInteger, sa.ForeignKey(creators.c.id), nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("chunk_no", sa.Integer, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("destination_account", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("key_generation", sa.Integer, nullable=False, server_default="1"),
    sa.Column("stripe_transfer_id", sa.Text),
    sa.Column("error_kind", sa.Text),
    sa.Column("error_code", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("retryable", sa.Boolean),
    sa.Column("outcome_unknown", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("error_replayed", sa.Boolean, nullable=False, server_default=FALSE),
    sa.Column("claimed_by", sa.Text),
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("paid_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    # when the current key generation was first sent: Stripe prunes a key 24 h after first use
    sa.Column("key_sent_at", sa.DateTime(timezone=True)),
    sa.Column("amount_reversed_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reversed_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("idempotency_key"),
    sa.UniqueConstraint("batch_id", "creator_id"),
    sa.UniqueConstraint("stripe_transfer_id"),
    sa.CheckConstraint("tokens > 0", name="tokens_positive"),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.CheckConstraint(_in("status", ITEM_STATUSES), name="status"),
    sa.CheckConstraint(
        "status <> 'paid' OR (stripe_transfer_id IS NOT NULL AND paid_at IS NOT NULL)",
        name="paid_has_transfer",
    ),
    sa.CheckConstraint(
        "status <> 'reversed' OR (stripe_transfer_id IS NOT NULL AND amount_reversed_minor > 0)",
        name="reversed_has_transfer",
    ),
    sa.Index("ix_payout_items_batch_id_chunk_no", "batch_id", "chunk_no"),
    sa.Index(
        "ix_payout_items_open_by_creator",
        "creator_id",
        postgresql_where=sa.text("status IN ('pending', 'processing', 'failed')"),
    ),
)

payout_chunks = sa.Table(
    "payout_chunks",
    metadata,
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey(payout_batches.c.id), primary_key=True),
    sa.Column("chunk_no", sa.Integer, primary_key=True),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("passes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_run_id", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("leased_by", sa.Text),  # the worker holding the chunk until lease_until
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.CheckConstraint(_in("status", CHUNK_STATUSES), name="status"),
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("creator_id", sa.BigInteger, sa.ForeignKey(creators.c.id), nullable=False),
    sa.Column("entry_type", sa.Text, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payout_item_id", sa.BigInteger, sa.ForeignKey(payout_items.c.id)),
    sa.Column("reference", sa.Text),
    sa.Column("description", sa.Text),
    sa.UniqueConstraint("payout_item_id"),
    sa.CheckConstraint(_in("entry_type", rules.ENTRY_TYPES), name="entry_type"),
    sa.CheckConstraint(
        "(entry_type = 'earning' AND tokens > 0) "
        "OR (entry_type IN ('withdrawal_completed', 'chargeback') AND tokens < 0) "
        "OR (entry_type = 'adjustment' AND tokens <> 0)",
        name="tokens_sign",
    ),
    sa.CheckConstraint(
        "payout_item_id IS NULL OR entry_type = 'withdrawal_completed'", name="item_withdrawal"
    ),
    sa.Index("ix_ledger_entries_creator_id_available_at", "creator_id", "available_at"),
    sa.Index(
        "ix_ledger_entries_reversal_reference",
        "reference",
        unique=True,
        postgresql_where=sa.text("reference LIKE 'reversal:%'"),
    ),
)

withdrawal_requests = sa.Table(
    "withdrawal_requests",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("creator_id", sa.BigInteger, sa.ForeignKey(creators.c.id), nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("payout_item_id", sa.BigInteger, sa.ForeignKey(payout_items.c.id)),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("tokens > 0", name="tokens_positive"),
    sa.CheckConstraint(_in("status", REQUEST_STATUSES), name="status"),
    sa.Index(
        "ix_withdrawal_requests_pending",
        "creator_id",
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

payout_evaluations = sa.Table(
    "payout_evaluations",
    metadata,
    sa.Column("payout_date", sa.Date, primary_key=True),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("minimum_tokens", sa.BigInteger, nullable=False),
    sa.Column("token_rate", sa.Numeric(18, 8), nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("outcomes", JSONB, nullable=False),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("run_id", sa.Text),
)

payout_eligibility = sa.Table(
    "payout_eligibility",
    metadata,
    sa.Column("payout_date", sa.Date, primary_key=True),
    sa.Column("creator_id", sa.BigInteger, sa.ForeignKey(creators.c.id), primary_key=True),
    sa.Column("reason", sa.Text),  # NULL: eligible
    sa.Column("available_tokens", sa.BigInteger, nullable=False),
    sa.Column("held_tokens", sa.BigInteger, nullable=False),
    sa.Column("requested_tokens", sa.BigInteger),
    sa.Column("payout_tokens", sa.BigInteger, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("destination_account", sa.Text),
    sa.Column("withdrawal_request_ids", ARRAY(sa.BigInteger), nullable=False, server_default="{}"),
    sa.CheckConstraint(
        "reason IS NOT NULL OR (payout_tokens > 0 AND amount_minor > 0 "
        "AND destination_account IS NOT NULL)",
        name="eligible_is_payable",
    ),
)

# The analysts' view with no dbt model (created by 0003_payouts; 0012_drop_payout_views dropped
# the two the dbt models analytics.payout_batch_summary / creator_payout_history replaced).
VIEW_NAMES = ("creator_token_balances",)


class PayoutStateError(RuntimeError):
    """A payout step found the data in a state it must not act on."""
