"""A small hand-made credit book for the credit tests: a handful of retailers, one per rule,
inserted with explicit dates relative to a business day in the credit timezone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa

from lending_pipelines.assets.credit import CREDIT_ASSETS
from lending_pipelines.assets.credit.jobs import CREDIT_JOBS
from lending_pipelines.assets.credit.partitions import TIMEZONE
from lending_pipelines.db.credit import (
    credit_accounts,
    credit_transactions,
    orders,
    pending_orders,
    retailers,
)
from lending_pipelines.resources.credit_config import CreditConfig
from tests.whatsapp_sending import sandbox_whatsapp

TZ = ZoneInfo(TIMEZONE)


def credit_definitions(database, sandbox) -> dg.Definitions:
    """The credit assets and jobs with the test database and the sandbox's WhatsApp."""
    return dg.Definitions(
        assets=CREDIT_ASSETS,
        jobs=CREDIT_JOBS,
        resources={
            "database": database,
            "whatsapp": sandbox_whatsapp(sandbox),
            "credit_config": CreditConfig(),
        },
    )


def at(day: date, hour: int = 9) -> datetime:
    """A local time on `day` in the credit timezone."""
    return datetime.combine(day, time(hour), tzinfo=TZ)


def add_retailer(
    conn,
    retailer_id: str,
    *,
    number: str,
    status: str = "ACTIVE",
    limit: int = 100_000,
    max_order: int = 50_000,
    max_days: int = 30,
    name: str | None = None,
) -> None:
    conn.execute(
        sa.insert(retailers).values(
            id=retailer_id,
            name=name or retailer_id.title(),
            whatsapp_number=number,
            credit_status=status,
            credit_paused_at=sa.func.now() if status == "PAUSED" else None,
            credit_pause_reason="paused by hand" if status == "PAUSED" else None,
        )
    )
    conn.execute(
        sa.insert(credit_accounts).values(
            retailer_id=retailer_id,
            credit_limit=limit,
            max_order_value=max_order,
            max_outstanding_days=max_days,
            currency="INR",
        )
    )


def add_order(
    conn,
    retailer_id: str,
    amount: int,
    *,
    created: datetime,
    mode: str = "CREDIT",
    status: str = "DELIVERED",
    items: list[dict] | None = None,
) -> int:
    return conn.execute(
        sa.insert(orders)
        .values(
            retailer_id=retailer_id,
            payment_mode=mode,
            status=status,
            amount=amount,
            currency="INR",
            items=items or [],
            created_at=created,
            failed_at=created if status == "FAILED" else None,
            failure_reason="stock unavailable" if status == "FAILED" else None,
        )
        .returning(orders.c.id)
    ).scalar_one()


def add_debit(
    conn,
    retailer_id: str,
    amount: int,
    *,
    created: datetime,
    due: date,
    order_id: int | None = None,
    status: str = "OPEN",
    cleared: int = 0,
    cleared_at: datetime | None = None,
) -> int:
    return conn.execute(
        sa.insert(credit_transactions)
        .values(
            retailer_id=retailer_id,
            order_id=order_id,
            type="DEBIT",
            amount=amount,
            currency="INR",
            due_date=due,
            status=status,
            cleared_amount=cleared,
            cleared_at=cleared_at,
            created_at=created,
        )
        .returning(credit_transactions.c.id)
    ).scalar_one()


def add_pending(conn, retailer_id: str, amount: int, *, created: datetime) -> int:
    return conn.execute(
        sa.insert(pending_orders)
        .values(retailer_id=retailer_id, amount=amount, currency="INR", created_at=created)
        .returning(pending_orders.c.id)
    ).scalar_one()


def statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(retailers.c.id, retailers.c.credit_status)).all())


def day_before(day: date, days: int) -> date:
    return day - timedelta(days=days)
