"""A hand-made collections loan book for the tests: loans with schedules, payments posted through
the real posting code, and the Dagster definitions of the workflow on the test database."""

from __future__ import annotations

import itertools
from datetime import date

import dagster as dg
import sqlalchemy as sa

from lending_pipelines.db.collections.payments import lock_posting, post_payments
from lending_pipelines.db.collections.tables import collection_loans, collectors, installments
from lending_pipelines.domain.collections_payments import AcceptedRow

_utr = itertools.count(1)


def next_utr() -> str:
    return f"SBINN{next(_utr):011d}"


def add_collectors(conn, *ids: str) -> None:
    conn.execute(sa.insert(collectors), [{"id": i, "name": f"Collector {i}"} for i in ids])


def add_loan(
    conn,
    schedule: list[tuple[date, int]],
    *,
    status: str = "ACTIVE",
    collector: str | None = None,
    opened_on: date = date(2025, 1, 1),
    phone: str = "+919800000001",
) -> int:
    loan_id = conn.execute(
        sa.insert(collection_loans)
        .values(
            borrower_name="Test Borrower",
            phone=phone,
            principal_minor=sum(a for _, a in schedule) or 100_00,
            status=status,
            collector_id=collector,
            opened_on=opened_on,
        )
        .returning(collection_loans.c.id)
    ).scalar_one()
    if schedule:
        conn.execute(
            sa.insert(installments),
            [
                {"loan_id": loan_id, "number": n, "due_date": due, "amount_due_minor": amount}
                for n, (due, amount) in enumerate(schedule, 1)
            ],
        )
    return loan_id


def pay(conn, loan_id: int, amount_minor: int, paid_on: date, *, source: str = "manual"):
    lock_posting(conn)
    return post_payments(
        conn,
        [AcceptedRow(1, next_utr(), loan_id, amount_minor, paid_on)],
        source=source,
        posted_by="test",
        run_id=None,
    )


def loan_state(conn, loan_id: int) -> tuple[int, str, str]:
    row = conn.execute(
        sa.select(
            collection_loans.c.dpd, collection_loans.c.bucket, collection_loans.c.status
        ).where(collection_loans.c.id == loan_id)
    ).one()
    return tuple(row)


def run_job(defs: dg.Definitions, name: str, *, partition_key=None, partition_range=None,
            config=None, raise_on_error=True, instance=None):  # fmt: skip
    job = defs.resolve_job_def(name)
    tags = {}
    if partition_range:
        tags = {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
    run_config = {"ops": {job.graph.node_names()[0]: {"config": config}}} if config else None
    return job.execute_in_process(
        partition_key=partition_key,
        run_config=run_config,
        tags=tags,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def collections_resources(database, **overrides) -> dict:
    """Every resource the collections jobs ask for; WhatsApp points nowhere unless overridden
    (only the reminders job calls it)."""
    from lending_dev.sandbox.twilio import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN
    from lending_pipelines.resources.collections_config import CollectionsConfig
    from lending_pipelines.resources.whatsapp import WhatsAppResource

    return {
        "database": database,
        "collections_config": CollectionsConfig(inbox_path="-"),
        "whatsapp": WhatsAppResource(
            account_sid=DEV_ACCOUNT_SID,
            auth_token=DEV_AUTH_TOKEN,
            from_number="+14155238886",
            base_url="http://127.0.0.1:9/twilio",
        ),
        **overrides,
    }
