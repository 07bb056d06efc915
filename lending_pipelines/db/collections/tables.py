"""Loan collections (workflow 5): the tables.

Platform-owned (the loan book, external assets here): `collection_loans`, `installments`,
`collectors`. Owned by this workflow: payment files, payments and their allocation to
installments, the quarantine of rejected rows, the DPD history (bucket changes, one row per loan
per change, and a daily summary per bucket), legal escalations, collector scores, reminders and
the financial guard's refusal records.

Money is integer paise (`*_minor`), currency INR.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ..meta import metadata

NOW = sa.text("now()")
ZERO = sa.text("0")

LOAN_STATUSES = ("ACTIVE", "CLOSED", "WRITTEN_OFF", "LEGAL")
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
FILE_STATUSES = ("processing", "posted", "rejected")
PAYMENT_SOURCES = ("file", "manual", "quarantine_release")
REJECTION_STATUSES = ("quarantined", "released")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


collectors = sa.Table(
    "collectors",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
)

collection_loans = sa.Table(
    "collection_loans",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("borrower_name", sa.Text, nullable=False),
    sa.Column("phone", sa.Text, nullable=False),
    sa.Column("borrower_timezone", sa.Text, nullable=False, server_default="Asia/Kolkata"),
    sa.Column("principal_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False, server_default="INR"),
    sa.Column("status", sa.Text, nullable=False, server_default="ACTIVE"),
    sa.Column("collector_id", sa.Text, sa.ForeignKey(collectors.c.id)),
    sa.Column("dpd", sa.Integer, nullable=False, server_default=ZERO),
    sa.Column("bucket", sa.Text, nullable=False, server_default="current"),
    # The business date dpd or bucket last changed (they are as of the latest computed day).
    sa.Column("dpd_changed_on", sa.Date),
    sa.Column("opened_on", sa.Date, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint("principal_minor > 0", name="principal_positive"),
    sa.CheckConstraint(_in("status", LOAN_STATUSES), name="status"),
    sa.CheckConstraint(_in("bucket", BUCKETS), name="bucket"),
    sa.CheckConstraint("dpd >= 0", name="dpd_not_negative"),
    sa.Index("ix_collection_loans_collector_id", "collector_id"),
    # room on each page for the daily DPD update to stay a heap-only (HOT) update
    postgresql_with={"fillfactor": 70},
)

installments = sa.Table(
    "installments",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("loan_id", sa.BigInteger, sa.ForeignKey(collection_loans.c.id), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("amount_due_minor", sa.BigInteger, nullable=False),
    # A cache of the allocations (`payment_allocations`), which are what DPD reads as of a date.
    sa.Column("amount_paid_minor", sa.BigInteger, nullable=False, server_default=ZERO),
    sa.Column("paid_on", sa.Date),
    sa.UniqueConstraint("loan_id", "number"),
    sa.CheckConstraint("amount_due_minor > 0", name="amount_due_positive"),
    sa.CheckConstraint(
        "amount_paid_minor >= 0 AND amount_paid_minor <= amount_due_minor", name="amount_paid"
    ),
    # No index on the paid columns, and room on each page (migration 0015): posting's updates of
    # them stay heap-only (HOT), with no new index entries.
    sa.Index("ix_installments_loan_id_due_date", "loan_id", "due_date"),
    postgresql_with={"fillfactor": 90},
)

payment_files = sa.Table(
    "payment_files",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False, server_default=ZERO),
    sa.Column("accepted", sa.Integer, nullable=False, server_default=ZERO),
    sa.Column("rejected", sa.Integer, nullable=False, server_default=ZERO),
    sa.Column("accepted_minor", sa.BigInteger, nullable=False, server_default=ZERO),
    sa.Column("status", sa.Text, nullable=False),
    # Why a whole file was rejected (unreadable, wrong encoding, missing columns).
    sa.Column("reason", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("sha256"),
    sa.CheckConstraint(_in("status", FILE_STATUSES), name="status"),
    sa.CheckConstraint("accepted + rejected = rows", name="rows_accounted"),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("utr", sa.Text, nullable=False),
    sa.Column("loan_id", sa.BigInteger, sa.ForeignKey(collection_loans.c.id), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("paid_on", sa.Date, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("file_id", sa.BigInteger, sa.ForeignKey(payment_files.c.id)),
    sa.Column("row_number", sa.Integer),
    # The part of the payment no installment could take (the loan was paid off): kept, reported.
    sa.Column("overpaid_minor", sa.BigInteger, nullable=False, server_default=ZERO),
    sa.Column("posted_by", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("utr"),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.CheckConstraint(
        "overpaid_minor >= 0 AND overpaid_minor <= amount_minor", name="overpaid_within_amount"
    ),
    sa.CheckConstraint(_in("source", PAYMENT_SOURCES), name="source"),
    sa.Index("ix_payments_loan_id", "loan_id"),
)

payment_allocations = sa.Table(
    "payment_allocations",
    metadata,
    sa.Column("payment_id", sa.BigInteger, sa.ForeignKey(payments.c.id), primary_key=True),
    sa.Column("installment_id", sa.BigInteger, sa.ForeignKey(installments.c.id), primary_key=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    # The payment's date, repeated here so DPD as of a date reads one table.
    sa.Column("paid_on", sa.Date, nullable=False),
    sa.CheckConstraint("amount_minor > 0", name="amount_positive"),
    sa.Index("ix_payment_allocations_installment_id", "installment_id"),
    # DPD of a past day finds the installments paid after it here.
    sa.Index("ix_payment_allocations_paid_on", "paid_on"),
)

payment_rejections = sa.Table(
    "payment_rejections",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("file_id", sa.BigInteger, sa.ForeignKey(payment_files.c.id)),
    # 1-based data row (the header is row 0); NULL when the whole file was rejected.
    sa.Column("row_number", sa.Integer),
    sa.Column("raw", JSONB, nullable=False),
    sa.Column("reason_code", sa.Text, nullable=False),
    sa.Column("field", sa.Text),
    sa.Column("value", sa.Text),
    sa.Column("status", sa.Text, nullable=False, server_default="quarantined"),
    sa.Column("released_payment_id", sa.BigInteger, sa.ForeignKey(payments.c.id)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.CheckConstraint(_in("status", REJECTION_STATUSES), name="status"),
    sa.Index("ix_payment_rejections_file_id", "file_id"),
)

# --- DPD history ----------------------------------------------------------------------------------

dpd_days = sa.Table(
    "dpd_days",
    metadata,
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("loans", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

# A row when a loan's bucket on a computed day differs from its bucket on the computed day
# before (no row: unchanged; before any row: current). Bounded by changes, not loans x days.
dpd_bucket_changes = sa.Table(
    "dpd_bucket_changes",
    metadata,
    sa.Column("loan_id", sa.BigInteger, sa.ForeignKey(collection_loans.c.id), primary_key=True),
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("from_bucket", sa.Text, nullable=False),
    sa.Column("bucket", sa.Text, nullable=False),
    sa.Column("dpd", sa.Integer, nullable=False),
    sa.Index("ix_dpd_bucket_changes_business_date", "business_date"),
)

dpd_daily_summary = sa.Table(
    "dpd_daily_summary",
    metadata,
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("loans", sa.Integer, nullable=False),
    sa.Column("outstanding_minor", sa.BigInteger, nullable=False),
    sa.Column("overdue_minor", sa.BigInteger, nullable=False),
    sa.Column("dpd_sum", sa.BigInteger, nullable=False),
)

legal_escalations = sa.Table(
    "legal_escalations",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("loan_id", sa.BigInteger, sa.ForeignKey(collection_loans.c.id), nullable=False),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("dpd", sa.Integer, nullable=False),
    sa.Column("previous_status", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("loan_id"),
)

collector_scores = sa.Table(
    "collector_scores",
    metadata,
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("collector_id", sa.Text, sa.ForeignKey(collectors.c.id), primary_key=True),
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("assigned_loans", sa.Integer, nullable=False),
    sa.Column("overdue_minor", sa.BigInteger, nullable=False),
    sa.Column("collected_minor", sa.BigInteger, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

collection_reminders = sa.Table(
    "collection_reminders",
    metadata,
    sa.Column("loan_id", sa.BigInteger, sa.ForeignKey(collection_loans.c.id), primary_key=True),
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("bucket", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.UniqueConstraint("idempotency_key"),
)

# --- the financial guard --------------------------------------------------------------------------

# What the guard's trigger refuses, with the writers (`SET LOCAL lending.collections_writer`)
# allowed to change each column. Principal and the schedule have no writer in this pipeline: every
# UPDATE of them is refused. Each pair has its own refusal counter, a sequence (migration 0014).
GUARDED_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("collection_loans", "dpd"): ("dpd",),
    ("collection_loans", "bucket"): ("dpd",),
    ("collection_loans", "status"): ("escalation", "close"),
    ("collection_loans", "principal_minor"): (),
    ("installments", "loan_id"): (),
    ("installments", "number"): (),
    ("installments", "due_date"): (),
    ("installments", "amount_due_minor"): (),
}


# Deleting a loan or an installment is refused to everyone, counted as the column "row_delete".
GUARDED_DELETES = ("collection_loans", "installments")
REFUSAL_COUNTERS: tuple[tuple[str, str], ...] = (
    *GUARDED_COLUMNS,
    *((table, "row_delete") for table in GUARDED_DELETES),
)


def refusal_sequence(table: str, column: str) -> str:
    return f"guard_refusals__{table}__{column}"


# The refusals the guard sensor has seen, per counter, and each batch it recorded and alerted.
guard_refusal_marks = sa.Table(
    "guard_refusal_marks",
    metadata,
    sa.Column("sequence_name", sa.Text, primary_key=True),
    sa.Column("seen", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)

guard_refusals = sa.Table(
    "guard_refusals",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("table_name", sa.Text, nullable=False),
    sa.Column("column_name", sa.Text, nullable=False),
    sa.Column("refusals", sa.BigInteger, nullable=False),
    sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
)
