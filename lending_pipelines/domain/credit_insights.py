"""A retailer's insights for a period and the short friendly message built from them.

Figures (amounts in integer minor units):
* orders and spend: orders placed in the period that did not fail, CREDIT and COD alike;
* average order value: spend / orders rounded half up, None without orders;
* top products: up to three item names by quantity (ties by name);
* on-time repayment rate: of the debits cleared in the period, the share cleared on or before
  their due date (credit timezone), None when nothing was repaid — a retailer paying exactly
  on the due date is on time;
* credit utilisation: outstanding / credit limit, None without a limit.

The message never divides by zero and never says "0 %" of something that did not happen: a
retailer with no orders gets an invitation, not statistics. `db/credit/insights.py` computes
the figures set-based; the message always comes from `insight_message`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from .credit_money import format_amount

TOP_PRODUCTS = 3
RATE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class OrderLine:
    name: str
    quantity: int


@dataclass(frozen=True)
class PeriodOrder:
    amount: int
    payment_mode: str
    lines: tuple[OrderLine, ...] = ()


@dataclass(frozen=True)
class Repayment:
    due_date: date
    cleared_on: date


@dataclass(frozen=True)
class Insights:
    orders: int
    spend: int
    average_order_value: int | None
    top_products: tuple[str, ...]
    repayments: int
    on_time_rate: Decimal | None
    utilisation: Decimal | None
    outstanding: int
    credit_limit: int
    currency: str


def ratio(numerator: int, denominator: int) -> Decimal | None:
    """numerator / denominator to 4 places, half up; None when the denominator is 0."""
    if denominator <= 0:
        return None
    if numerator >= 0:  # integer half-up rounding, exact and fast: round(n / d, 4)
        return Decimal((2 * numerator * 10_000 + denominator) // (2 * denominator)).scaleb(-4)
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATE_PLACES, ROUND_HALF_UP)


def average(total: int, count: int) -> int | None:
    if count <= 0:
        return None
    if total >= 0:
        return (2 * total + count) // (2 * count)
    return int((Decimal(total) / Decimal(count)).to_integral_value(ROUND_HALF_UP))


def top_products(orders: Iterable[PeriodOrder], limit: int = TOP_PRODUCTS) -> tuple[str, ...]:
    quantities: dict[str, int] = {}
    for order in orders:
        for line in order.lines:
            quantities[line.name] = quantities.get(line.name, 0) + line.quantity
    ranked = sorted(quantities.items(), key=lambda item: (-item[1], item[0]))
    return tuple(name for name, quantity in ranked[:limit] if quantity > 0)


def compute_insights(
    *,
    orders: Iterable[PeriodOrder],
    repayments: Iterable[Repayment],
    outstanding: int,
    credit_limit: int,
    currency: str,
) -> Insights:
    placed = list(orders)
    repaid = list(repayments)
    return insights_from_totals(
        orders=len(placed),
        spend=sum(order.amount for order in placed),
        top=top_products(placed),
        repayments=len(repaid),
        on_time=sum(1 for r in repaid if r.cleared_on <= r.due_date),
        outstanding=outstanding,
        credit_limit=credit_limit,
        currency=currency,
    )


def insights_from_totals(
    *,
    orders: int,
    spend: int,
    top: Iterable[str],
    repayments: int,
    on_time: int,
    outstanding: int,
    credit_limit: int,
    currency: str,
) -> Insights:
    """The same figures from totals computed elsewhere (set-based SQL)."""
    return Insights(
        orders=orders,
        spend=spend,
        average_order_value=average(spend, orders),
        top_products=tuple(top),
        repayments=repayments,
        on_time_rate=ratio(on_time, repayments),
        utilisation=ratio(max(outstanding, 0), credit_limit),
        outstanding=outstanding,
        credit_limit=credit_limit,
        currency=currency,
    )


def _percent(rate: Decimal) -> str:
    return f"{int((rate * 100).to_integral_value(ROUND_HALF_UP))}%"


def insight_message(name: str, insights: Insights, period_days: int) -> str:
    """One or two friendly sentences for the retailer, from the figures only."""
    money = insights.currency
    available = max(0, insights.credit_limit - max(insights.outstanding, 0))
    if insights.orders == 0:
        text = f"Hi {name}, no orders in the last {period_days} days."
        if available > 0:
            text += f" Your credit of {format_amount(available, money)} is ready when you are."
        return text
    noun = "order" if insights.orders == 1 else "orders"
    parts = [
        f"Hi {name}, {insights.orders} {noun} in the last {period_days} days, "
        f"{format_amount(insights.spend, money)} in total"
    ]
    if insights.orders > 1 and insights.average_order_value is not None:
        parts[0] += f" (about {format_amount(insights.average_order_value, money)} each)"
    parts[0] += "."
    if insights.top_products:
        parts.append(f"Top items: {', '.join(insights.top_products)}.")
    if insights.on_time_rate is not None:
        if insights.on_time_rate == 1:
            parts.append("Every repayment on time, thank you!")
        else:
            parts.append(f"{_percent(insights.on_time_rate)} of repayments on time.")
    if insights.utilisation is not None and insights.outstanding > 0:
        parts.append(
            f"Credit used: {_percent(insights.utilisation)}, "
            f"{format_amount(available, money)} available."
        )
    elif insights.credit_limit > 0:
        parts.append(f"Your full credit of {format_amount(insights.credit_limit, money)} is free.")
    return " ".join(parts)
