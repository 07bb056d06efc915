"""Loan collections (workflow 5): the loan book (platform tables), payment files, payments and
allocations, quarantine, DPD history, escalations, scores, reminders, and the financial guard.

The guard is a trigger on `collection_loans` and `installments`: an UPDATE changing a guarded
column (dpd, bucket, status, principal, the schedule) is refused unless the transaction carries
the writer marker of the pipeline job allowed to change it (`SET LOCAL
lending.collections_writer = 'dpd'`). Before raising, the trigger advances a sequence per
guarded column: sequences are not transactional, so the count of refused attempts survives the
rollback the refusal causes (no extension needed; the embedded server has none beyond plpgsql).
The collections guard sensor turns new counts into `guard_refusals` rows and an alert.

Revision ID: 0014_collections
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014_collections"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
ZERO = sa.text("0")
SCHEMA = "lending"

# (table, column) -> writers allowed to change it; mirrors db/collections/tables.GUARDED_COLUMNS
# as of this revision (a migration never imports application code).
GUARDED = {
    ("collection_loans", "dpd"): ("dpd",),
    ("collection_loans", "bucket"): ("dpd",),
    ("collection_loans", "status"): ("escalation", "close"),
    ("collection_loans", "principal_minor"): (),
    ("installments", "loan_id"): (),
    ("installments", "number"): (),
    ("installments", "due_date"): (),
    ("installments", "amount_due_minor"): (),
}


# Deleting a loan or an installment is refused to everyone (counted as column "row_delete").
GUARDED_DELETES = ("collection_loans", "installments")


def _seq(table: str, column: str) -> str:
    return f"guard_refusals__{table}__{column}"


def _columns(table: str) -> list[str]:
    return [column for tbl, column in GUARDED if tbl == table]


def _allowed(writers: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{w}'" for w in writers) + "]::text[]"


def _refusal_condition(table: str) -> str:
    """The trigger's WHEN: evaluated without entering PL/pgSQL, so the DPD job's daily UPDATE of
    a million rows pays almost nothing; the function runs only for an UPDATE it will refuse."""
    writer = "coalesce(current_setting('lending.collections_writer', true), '')"
    return " OR ".join(
        f"(OLD.{column} IS DISTINCT FROM NEW.{column} AND NOT ({writer} = ANY({_allowed(w)})))"
        for (tbl, column), w in GUARDED.items()
        if tbl == table
    )


def _guard_function(table: str) -> str:
    checks = []
    for (tbl, column), writers in GUARDED.items():
        if tbl != table:
            continue
        allowed = _allowed(writers)
        checks.append(
            f"""
    IF NEW.{column} IS DISTINCT FROM OLD.{column} AND NOT (writer = ANY({allowed})) THEN
        PERFORM nextval('{SCHEMA}.{_seq(tbl, column)}');
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format(
                'financial guard: {tbl}.{column} of row %s cannot be changed from %s to %s by '
                'writer %L (allowed: {", ".join(writers) or "none"}); the attempt is recorded',
                OLD.id, OLD.{column}, NEW.{column}, writer),
            COLUMN = '{column}', TABLE = '{tbl}', SCHEMA = '{SCHEMA}';
    END IF;"""
        )
    return f"""
CREATE FUNCTION {SCHEMA}.{table}_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    writer text := coalesce(current_setting('lending.collections_writer', true), '');
BEGIN{"".join(checks)}
    RETURN NEW;
END
$$"""


def upgrade() -> None:
    op.create_table(
        "collectors",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.PrimaryKeyConstraint("id", name="pk_collectors"),
        schema=SCHEMA,
    )
    op.create_table(
        "collection_loans",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("borrower_name", sa.Text, nullable=False),
        sa.Column("phone", sa.Text, nullable=False),
        sa.Column("borrower_timezone", sa.Text, nullable=False, server_default="Asia/Kolkata"),
        sa.Column("principal_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False, server_default="INR"),
        sa.Column("status", sa.Text, nullable=False, server_default="ACTIVE"),
        sa.Column("collector_id", sa.Text),
        sa.Column("dpd", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("bucket", sa.Text, nullable=False, server_default="current"),
        sa.Column("dpd_changed_on", sa.Date),
        sa.Column("opened_on", sa.Date, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_collection_loans"),
        sa.ForeignKeyConstraint(
            ["collector_id"],
            [f"{SCHEMA}.collectors.id"],
            name="fk_collection_loans_collector_id_collectors",
        ),
        sa.CheckConstraint("principal_minor > 0", name="ck_collection_loans_principal_positive"),
        sa.CheckConstraint(
            "status IN ('ACTIVE', 'CLOSED', 'WRITTEN_OFF', 'LEGAL')",
            name="ck_collection_loans_status",
        ),
        sa.CheckConstraint(
            "bucket IN ('current', '1-30', '31-60', '61-90', '90+')",
            name="ck_collection_loans_bucket",
        ),
        sa.CheckConstraint("dpd >= 0", name="ck_collection_loans_dpd_not_negative"),
        schema=SCHEMA,
        # room on each page for the daily DPD update to stay a heap-only (HOT) update
        postgresql_with={"fillfactor": 70},
    )
    op.create_index(
        "ix_collection_loans_collector_id", "collection_loans", ["collector_id"], schema=SCHEMA
    )
    op.create_table(
        "installments",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("loan_id", sa.BigInteger, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("amount_due_minor", sa.BigInteger, nullable=False),
        sa.Column("amount_paid_minor", sa.BigInteger, nullable=False, server_default=ZERO),
        sa.Column("paid_on", sa.Date),
        sa.PrimaryKeyConstraint("id", name="pk_installments"),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            [f"{SCHEMA}.collection_loans.id"],
            name="fk_installments_loan_id_collection_loans",
        ),
        sa.UniqueConstraint("loan_id", "number", name="uq_installments_loan_id_number"),
        sa.CheckConstraint("amount_due_minor > 0", name="ck_installments_amount_due_positive"),
        sa.CheckConstraint(
            "amount_paid_minor >= 0 AND amount_paid_minor <= amount_due_minor",
            name="ck_installments_amount_paid",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_installments_loan_id_due_date", "installments", ["loan_id", "due_date"], schema=SCHEMA
    )

    op.create_table(
        "payment_files",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("accepted", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("rejected", sa.Integer, nullable=False, server_default=ZERO),
        sa.Column("accepted_minor", sa.BigInteger, nullable=False, server_default=ZERO),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_payment_files"),
        sa.UniqueConstraint("sha256", name="uq_payment_files_sha256"),
        sa.CheckConstraint(
            "status IN ('processing', 'posted', 'rejected')", name="ck_payment_files_status"
        ),
        sa.CheckConstraint("accepted + rejected = rows", name="ck_payment_files_rows_accounted"),
        schema=SCHEMA,
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("utr", sa.Text, nullable=False),
        sa.Column("loan_id", sa.BigInteger, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("file_id", sa.BigInteger),
        sa.Column("row_number", sa.Integer),
        sa.Column("overpaid_minor", sa.BigInteger, nullable=False, server_default=ZERO),
        sa.Column("posted_by", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_payments"),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            [f"{SCHEMA}.collection_loans.id"],
            name="fk_payments_loan_id_collection_loans",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], [f"{SCHEMA}.payment_files.id"], name="fk_payments_file_id_payment_files"
        ),
        sa.UniqueConstraint("utr", name="uq_payments_utr"),
        sa.CheckConstraint("amount_minor > 0", name="ck_payments_amount_positive"),
        sa.CheckConstraint(
            "overpaid_minor >= 0 AND overpaid_minor <= amount_minor",
            name="ck_payments_overpaid_within_amount",
        ),
        sa.CheckConstraint(
            "source IN ('file', 'manual', 'quarantine_release')", name="ck_payments_source"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_payments_loan_id", "payments", ["loan_id"], schema=SCHEMA)
    op.create_table(
        "payment_allocations",
        sa.Column("payment_id", sa.BigInteger, nullable=False),
        sa.Column("installment_id", sa.BigInteger, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.PrimaryKeyConstraint("payment_id", "installment_id", name="pk_payment_allocations"),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            [f"{SCHEMA}.payments.id"],
            name="fk_payment_allocations_payment_id_payments",
        ),
        sa.ForeignKeyConstraint(
            ["installment_id"],
            [f"{SCHEMA}.installments.id"],
            name="fk_payment_allocations_installment_id_installments",
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_payment_allocations_amount_positive"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_payment_allocations_installment_id",
        "payment_allocations",
        ["installment_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_payment_allocations_paid_on", "payment_allocations", ["paid_on"], schema=SCHEMA
    )
    op.create_table(
        "payment_rejections",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("file_id", sa.BigInteger),
        sa.Column("row_number", sa.Integer),
        sa.Column("raw", JSONB, nullable=False),
        sa.Column("reason_code", sa.Text, nullable=False),
        sa.Column("field", sa.Text),
        sa.Column("value", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="quarantined"),
        sa.Column("released_payment_id", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_payment_rejections"),
        sa.ForeignKeyConstraint(
            ["file_id"],
            [f"{SCHEMA}.payment_files.id"],
            name="fk_payment_rejections_file_id_payment_files",
        ),
        sa.ForeignKeyConstraint(
            ["released_payment_id"],
            [f"{SCHEMA}.payments.id"],
            name="fk_payment_rejections_released_payment_id_payments",
        ),
        sa.CheckConstraint(
            "status IN ('quarantined', 'released')", name="ck_payment_rejections_status"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_payment_rejections_file_id", "payment_rejections", ["file_id"], schema=SCHEMA
    )
    op.create_table(
        "dpd_days",
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("loans", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("business_date", name="pk_dpd_days"),
        schema=SCHEMA,
    )
    op.create_table(
        "dpd_bucket_changes",
        sa.Column("loan_id", sa.BigInteger, nullable=False),
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("from_bucket", sa.Text, nullable=False),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("dpd", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "business_date", name="pk_dpd_bucket_changes"),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            [f"{SCHEMA}.collection_loans.id"],
            name="fk_dpd_bucket_changes_loan_id_collection_loans",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_dpd_bucket_changes_business_date",
        "dpd_bucket_changes",
        ["business_date"],
        schema=SCHEMA,
    )
    op.create_table(
        "dpd_daily_summary",
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("loans", sa.Integer, nullable=False),
        sa.Column("outstanding_minor", sa.BigInteger, nullable=False),
        sa.Column("overdue_minor", sa.BigInteger, nullable=False),
        sa.Column("dpd_sum", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("business_date", "bucket", name="pk_dpd_daily_summary"),
        schema=SCHEMA,
    )
    op.create_table(
        "legal_escalations",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("loan_id", sa.BigInteger, nullable=False),
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("dpd", sa.Integer, nullable=False),
        sa.Column("previous_status", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_legal_escalations"),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            [f"{SCHEMA}.collection_loans.id"],
            name="fk_legal_escalations_loan_id_collection_loans",
        ),
        sa.UniqueConstraint("loan_id", name="uq_legal_escalations_loan_id"),
        schema=SCHEMA,
    )
    op.create_table(
        "collector_scores",
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("collector_id", sa.Text, nullable=False),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("assigned_loans", sa.Integer, nullable=False),
        sa.Column("overdue_minor", sa.BigInteger, nullable=False),
        sa.Column("collected_minor", sa.BigInteger, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint(
            "business_date", "collector_id", "bucket", name="pk_collector_scores"
        ),
        sa.ForeignKeyConstraint(
            ["collector_id"],
            [f"{SCHEMA}.collectors.id"],
            name="fk_collector_scores_collector_id_collectors",
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "collection_reminders",
        sa.Column("loan_id", sa.BigInteger, nullable=False),
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("loan_id", "business_date", name="pk_collection_reminders"),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            [f"{SCHEMA}.collection_loans.id"],
            name="fk_collection_reminders_loan_id_collection_loans",
        ),
        sa.UniqueConstraint("idempotency_key", name="uq_collection_reminders_idempotency_key"),
        schema=SCHEMA,
    )
    op.create_table(
        "guard_refusal_marks",
        sa.Column("sequence_name", sa.Text, nullable=False),
        sa.Column("seen", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("sequence_name", name="pk_guard_refusal_marks"),
        schema=SCHEMA,
    )
    op.create_table(
        "guard_refusals",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("column_name", sa.Text, nullable=False),
        sa.Column("refusals", sa.BigInteger, nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("id", name="pk_guard_refusals"),
        schema=SCHEMA,
    )
    for table, column in [*GUARDED, *((t, "row_delete") for t in GUARDED_DELETES)]:
        op.execute(f"CREATE SEQUENCE {SCHEMA}.{_seq(table, column)} START 1")
    for table in GUARDED_DELETES:
        op.execute(
            f"""
CREATE FUNCTION {SCHEMA}.{table}_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('{SCHEMA}.{_seq(table, "row_delete")}');
    RAISE EXCEPTION USING
        ERRCODE = '42501',
        MESSAGE = format('financial guard: row %s of {table} cannot be deleted; '
                         'the attempt is recorded', OLD.id),
        TABLE = '{table}', SCHEMA = '{SCHEMA}';
END
$$"""
        )
        op.execute(
            f"CREATE TRIGGER {table}_guard_delete BEFORE DELETE ON {SCHEMA}.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.{table}_guard_delete()"
        )
    for table in ("collection_loans", "installments"):
        op.execute(_guard_function(table))
        op.execute(
            f"CREATE TRIGGER {table}_guard BEFORE UPDATE OF {', '.join(_columns(table))} "
            f"ON {SCHEMA}.{table} FOR EACH ROW WHEN ({_refusal_condition(table)}) "
            f"EXECUTE FUNCTION {SCHEMA}.{table}_guard()"
        )


def downgrade() -> None:
    for table in ("installments", "collection_loans"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_guard ON {SCHEMA}.{table}")
        op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.{table}_guard()")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_guard_delete ON {SCHEMA}.{table}")
        op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.{table}_guard_delete()")
    for table, column in [*GUARDED, *((t, "row_delete") for t in GUARDED_DELETES)]:
        op.execute(f"DROP SEQUENCE IF EXISTS {SCHEMA}.{_seq(table, column)}")
    for table in (
        "guard_refusals",
        "guard_refusal_marks",
        "collection_reminders",
        "collector_scores",
        "legal_escalations",
        "dpd_daily_summary",
        "dpd_bucket_changes",
        "dpd_days",
        "payment_rejections",
        "payment_allocations",
        "payments",
        "payment_files",
        "installments",
        "collection_loans",
        "collectors",
    ):
        op.execute(f"DROP TABLE {SCHEMA}.{table}")
