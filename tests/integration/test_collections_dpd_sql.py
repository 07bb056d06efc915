"""The set-based DPD (db/collections/dpd.py) equals the pure rule (domain dpd_as_of) loan by loan
on a random book with partial, late and later-dated payments, for several business days."""

from __future__ import annotations

import random
from datetime import date, timedelta

import sqlalchemy as sa

from lending_pipelines.db.collections.dpd import DPD_AS_OF
from lending_pipelines.domain.collections import Allocation, Installment, dpd_as_of
from tests.collections_book import add_loan, pay

D = date(2026, 10, 31)


def test_set_based_dpd_equals_the_domain_rule_on_a_random_book(db):
    rng = random.Random(14)
    with db.begin() as conn:
        for _ in range(120):
            first_due = D - timedelta(days=rng.randint(-40, 200))
            schedule = [(first_due + timedelta(days=30 * n), rng.randint(1, 50) * 100_00)
                        for n in range(rng.randint(1, 6))]  # fmt: skip
            loan = add_loan(conn, schedule)
            for _ in range(rng.randint(0, 4)):
                pay(conn, loan, rng.randint(1, 80) * 100_00,
                    D + timedelta(days=rng.randint(-150, 20)))  # fmt: skip
    with db.connect() as conn:
        schedules = conn.execute(
            sa.text("SELECT id, loan_id, number, due_date, amount_due_minor "
                    "FROM lending.installments")).all()  # fmt: skip
        allocations = conn.execute(
            sa.text("SELECT a.installment_id, a.amount_minor, a.paid_on, i.loan_id "
                    "FROM lending.payment_allocations a JOIN lending.installments i "
                    "ON i.id = a.installment_id")).all()  # fmt: skip
        for day in (D - timedelta(days=90), D - timedelta(days=7), D, D + timedelta(days=25)):
            computed = dict(
                conn.execute(
                    sa.text(f"SELECT loan_id, dpd FROM ({DPD_AS_OF}) d"), {"day": day}
                ).all()  # fmt: skip
            )
            expected = {}
            for loan_id in computed:
                installments = [Installment(r.id, r.number, r.due_date, r.amount_due_minor)
                                for r in schedules if r.loan_id == loan_id]  # fmt: skip
                paid = [Allocation(a.installment_id, a.amount_minor, a.paid_on)
                        for a in allocations if a.loan_id == loan_id]  # fmt: skip
                expected[loan_id] = dpd_as_of(installments, paid, day)
            assert computed == expected, day
            assert any(v > 0 for v in computed.values()) and any(v == 0 for v in computed.values())
