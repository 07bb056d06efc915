"""The set-based credit SQL and the pure rules agree: aging buckets and the guardrail decision
computed both ways on the same random book."""

from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa

from lending_pipelines.assets.credit.partitions import TIMEZONE, today
from lending_pipelines.db.credit.exposure import (
    aging_rows,
    outstanding_by_bucket,
    total_outstanding,
)
from lending_pipelines.db.credit.guardrails import breaching_retailers
from lending_pipelines.domain.credit_aging import aging_bucket
from lending_pipelines.domain.credit_guardrails import guardrail_decision
from tests.credit_book import add_debit, add_retailer, at

DAY = today()


def random_book(conn, rng: random.Random, retailers: int = 60) -> dict[int, tuple]:
    debits = {}
    for index in range(retailers):
        retailer_id = f"r-{index:03d}"
        add_retailer(
            conn,
            retailer_id,
            number=f"+9198{index:08d}",
            limit=rng.choice([0, 10_000, 50_000, 200_000]),
            max_days=rng.choice([0, 7, 30, 60]),
        )
        for _ in range(rng.randint(0, 4)):
            age = rng.randint(0, 150)
            amount = rng.randint(1, 60_000)
            status = rng.choice(["OPEN", "OPEN", "PARTIAL", "CLEARED", "REVERSED"])
            cleared = {"PARTIAL": amount // 2, "CLEARED": amount}.get(status, 0)
            due = DAY - timedelta(days=age) + timedelta(days=rng.randint(0, 20))
            debit_id = add_debit(
                conn,
                retailer_id,
                amount,
                created=at(DAY - timedelta(days=age), rng.randint(0, 23)),
                due=due,
                status=status,
                cleared=cleared,
            )
            debits[debit_id] = (retailer_id, amount - cleared, due, status, age)
    return debits


def test_aging_in_sql_puts_every_unpaid_debit_in_the_bucket_the_rule_gives(db):
    rng = random.Random(13)
    bounds = (15, 45, 100)
    with db.begin() as conn:
        debits = random_book(conn, rng)
        rows = aging_rows(conn, business_date=DAY, bounds=bounds)
        buckets = outstanding_by_bucket(conn, business_date=DAY, bounds=bounds)
        total = total_outstanding(conn)
    expected: dict[tuple[str, str], int] = {}
    for retailer_id, owed, due, status, _ in debits.values():
        if status in {"OPEN", "PARTIAL"}:
            key = (retailer_id, aging_bucket(due, DAY, bounds))
            expected[key] = expected.get(key, 0) + owed
    assert {(r.retailer_id, r.bucket): r.amount for r in rows} == expected
    assert sum(b["amount"] for b in buckets) == sum(expected.values()) == total["INR"]
    assert [b["bucket"] for b in buckets] == ["current", "1-15", "16-45", "46-100", "100+"]


def test_the_guardrail_query_finds_exactly_the_retailers_the_rule_pauses(db):
    rng = random.Random(7)
    with db.begin() as conn:
        random_book(conn, rng, retailers=80)
        found = {e.retailer_id for e in breaching_retailers(conn, business_date=DAY, tz=TIMEZONE)}
        accounts = conn.execute(
            sa.text(
                "SELECT r.id, a.credit_limit, a.max_outstanding_days, "
                "coalesce(sum(t.amount - t.cleared_amount) FILTER (WHERE t.status IN "
                "('OPEN','PARTIAL')), 0) AS outstanding, "
                "min((t.created_at AT TIME ZONE :tz)::date) FILTER (WHERE t.status IN "
                "('OPEN','PARTIAL')) AS oldest "
                "FROM lending.retailers r JOIN lending.credit_accounts a ON a.retailer_id = r.id "
                "LEFT JOIN lending.credit_transactions t ON t.retailer_id = r.id "
                "GROUP BY r.id, a.credit_limit, a.max_outstanding_days"
            ),
            {"tz": TIMEZONE},
        ).all()
    expected = {
        retailer_id
        for retailer_id, limit, max_days, outstanding, oldest in accounts
        if guardrail_decision(
            outstanding=int(outstanding),
            credit_limit=limit,
            currency="INR",
            oldest_unpaid_debit_on=oldest,
            business_date=DAY,
            max_outstanding_days=max_days,
        ).pause
    }
    assert found == expected
    assert 5 < len(found) < 75  # the random book exercises both outcomes
