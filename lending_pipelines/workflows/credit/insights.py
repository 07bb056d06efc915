"""Insights regeneration (03:00): figures for every ACTIVE retailer over the period ending on
the business day, computed set-based (db/credit/insights.py); the figures' derived values and
the message come from domain/credit_insights.py; stored one row per retailer and period end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from ...db.credit.insights import period_totals, store_insights
from ...domain.credit_insights import TOP_PRODUCTS, Insights, insight_message, insights_from_totals


@dataclass(frozen=True)
class InsightsReport:
    period_start: date
    period_end: date
    rows: list[dict]

    @property
    def with_orders(self) -> int:
        return sum(1 for row in self.rows if row["orders_count"])


def period_of(business_date: date, period_days: int) -> tuple[date, date]:
    return business_date - timedelta(days=period_days - 1), business_date


def insight_row(totals: Mapping[str, Any], period_days: int) -> dict:
    figures: Insights = insights_from_totals(
        orders=totals["orders"],
        spend=totals["spend"],
        top=totals["top"],
        repayments=totals["repayments"],
        on_time=totals["on_time"],
        outstanding=totals["outstanding"],
        credit_limit=totals["credit_limit"],
        currency=totals["currency"],
    )
    return {
        "retailer_id": totals["retailer_id"],
        "orders_count": figures.orders,
        "spend": figures.spend,
        "average_order_value": figures.average_order_value,
        "top_products": list(figures.top_products),
        "repayments_count": figures.repayments,
        "on_time_rate": figures.on_time_rate,
        "utilisation": figures.utilisation,
        "outstanding": figures.outstanding,
        "credit_limit": figures.credit_limit,
        "currency": figures.currency,
        "message": insight_message(totals["name"], figures, period_days),
    }


def regenerate_insights(
    engine: sa.Engine, *, business_date: date, period_days: int, tz: str, run_id: str | None
) -> InsightsReport:
    start, end = period_of(business_date, period_days)
    with engine.begin() as conn:
        totals = period_totals(conn, start=start, end=end, tz=tz, top=TOP_PRODUCTS)
        rows = [insight_row(t, period_days) for t in totals]
        store_insights(conn, rows, start=start, end=end, run_id=run_id)
    return InsightsReport(start, end, rows)
