"""Retailer insights (domain/credit_insights.py): the figures and the friendly message."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lending_pipelines.domain.credit_insights import (
    OrderLine,
    PeriodOrder,
    Repayment,
    compute_insights,
    insight_message,
)

DUE = date(2026, 3, 10)
RICE, SUGAR, OIL = OrderLine("Rice", 5), OrderLine("Sugar", 2), OrderLine("Oil", 7)


def insights(orders=(), repayments=(), outstanding=0, limit=100_000):
    return compute_insights(
        orders=orders,
        repayments=repayments,
        outstanding=outstanding,
        credit_limit=limit,
        currency="INR",
    )


@pytest.mark.parametrize(
    ("case", "figures", "expected", "absent"),
    [
        (
            "no orders",
            insights(),
            {
                "orders": 0,
                "spend": 0,
                "average_order_value": None,
                "on_time_rate": None,
                "utilisation": Decimal("0.0000"),
            },
            ["%", "average", "about"],
        ),
        (
            "only COD orders",
            insights(
                orders=[PeriodOrder(30_000, "COD", (RICE,)), PeriodOrder(10_001, "COD", (OIL,))]
            ),
            {
                "orders": 2,
                "spend": 40_001,
                "average_order_value": 20_001,
                "on_time_rate": None,
                "top_products": ("Oil", "Rice"),
            },
            ["%", "repayments on time"],
        ),
        (
            "repaid exactly on the due date",
            insights(
                orders=[PeriodOrder(20_000, "CREDIT", (SUGAR,))],
                repayments=[Repayment(DUE, DUE), Repayment(DUE, DUE)],
            ),
            {"on_time_rate": Decimal("1.0000"), "repayments": 2},
            ["0%"],
        ),
        (
            "one of three late",
            insights(
                orders=[PeriodOrder(9_000, "CREDIT", (RICE, SUGAR))] * 3,
                repayments=[
                    Repayment(DUE, DUE - timedelta(days=2)),
                    Repayment(DUE, DUE),
                    Repayment(DUE, DUE + timedelta(days=1)),
                ],
                outstanding=25_000,
            ),
            {
                "on_time_rate": Decimal("0.6667"),
                "utilisation": Decimal("0.2500"),
                "top_products": ("Rice", "Sugar"),
                "average_order_value": 9_000,
            },
            [],
        ),
        (
            "no credit limit",
            insights(orders=[PeriodOrder(500, "COD")], limit=0),
            {"utilisation": None},
            ["Credit used", "full credit"],
        ),
    ],
)
def test_insight_cases(case, figures, expected, absent):
    for name, value in expected.items():
        assert getattr(figures, name) == value, (case, name)
    message = insight_message("Asha", figures, 30)
    assert message.startswith("Hi Asha")
    for text in absent:
        assert text not in message, (case, text, message)


def test_the_message_reads_as_the_figures():
    figures = insights(
        orders=[PeriodOrder(9_000, "CREDIT", (RICE, SUGAR))] * 3,
        repayments=[Repayment(DUE, DUE), Repayment(DUE, DUE + timedelta(days=1))],
        outstanding=25_000,
    )
    assert insight_message("Asha", figures, 30) == (
        "Hi Asha, 3 orders in the last 30 days, INR 270.00 in total (about INR 90.00 each). "
        "Top items: Rice, Sugar. 50% of repayments on time. Credit used: 25%, INR 750.00 available."
    )
    assert insight_message("Ravi", insights(), 30) == (
        "Hi Ravi, no orders in the last 30 days. Your credit of INR 1,000.00 is ready when you are."
    )


@given(
    st.lists(st.integers(1, 10**7), max_size=20),
    st.lists(st.integers(-30, 30), max_size=20),
    st.integers(0, 10**8),
    st.integers(0, 10**8),
)
def test_insights_never_divide_by_zero_and_rates_stay_within_bounds(
    amounts, lateness, outstanding, limit
):
    figures = insights(
        orders=[PeriodOrder(a, "CREDIT") for a in amounts],
        repayments=[Repayment(DUE, DUE + timedelta(days=d)) for d in lateness],
        outstanding=outstanding,
        limit=limit,
    )
    assert figures.spend == sum(amounts)
    if amounts:
        assert min(amounts) <= figures.average_order_value <= max(amounts)
    if figures.on_time_rate is not None:
        assert Decimal(0) <= figures.on_time_rate <= Decimal(1)
    assert insight_message("X", figures, 30)
