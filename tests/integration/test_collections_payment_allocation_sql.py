"""The set-based posting (payments staged by COPY, oldest-first allocation by running sums in SQL)
gives exactly what the pure rule gives: `domain.collections.allocate` applied payment by payment
in (paid_on, row) order, each payment seeing what the earlier ones left."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from lending_pipelines.db.collections import posting
from lending_pipelines.db.collections.payments import known_loans, lock_posting, recorded_utrs
from lending_pipelines.db.collections.posting import post_payments
from lending_pipelines.db.collections.tables import (
    collection_loans,
    installments,
    payment_allocations,
    payments,
)
from lending_pipelines.domain.collections import OpenInstallment, allocate
from lending_pipelines.domain.collections_payments import AcceptedRow
from tests.collections_book import add_loan

START = date(2026, 1, 1)


def random_book(conn, rng: random.Random, loans: int) -> list[int]:
    """Loans of 1-6 installments: some share a due date (the number decides), some are partly or
    fully paid already, amounts of a few paise to a few thousand rupees."""
    loan_ids = []
    for n in range(loans):
        loan_id = conn.execute(
            sa.insert(collection_loans)
            .values(borrower_name=f"B{n}", phone="+919800000001", principal_minor=100_00,
                    opened_on=START)
            .returning(collection_loans.c.id)
        ).scalar_one()  # fmt: skip
        rows = []
        for number in range(1, rng.randint(1, 6) + 1):
            due = START + timedelta(days=30 * rng.choice([number, number, number - 1]))
            amount = rng.choice([1, 7, 500_00, 1234_56, rng.randint(1, 5000_00)])
            paid = rng.choice([0, 0, 0, amount, rng.randint(0, amount)])
            rows.append({"loan_id": loan_id, "number": number, "due_date": due,
                         "amount_due_minor": amount, "amount_paid_minor": paid,
                         "paid_on": START if paid else None})  # fmt: skip
        conn.execute(sa.insert(installments), rows)
        loan_ids.append(loan_id)
    return loan_ids


def random_payments(rng: random.Random, loan_ids: list[int], count: int) -> list[AcceptedRow]:
    """Rows in file order with row numbers shuffled against dates: several per loan, some paying
    less than an installment, some more than the whole loan (overpayment)."""
    numbers = rng.sample(range(1, 10 * count), count)
    return [
        AcceptedRow(
            numbers[n],
            f"SBINN{n:011d}",
            rng.choice(loan_ids),
            rng.choice([1, 99, 500_00, rng.randint(1, 3000_00), rng.randint(1, 20000_00)]),
            START + timedelta(days=rng.choice([40, 41, 41, 42])),
        )
        for n in range(count)
    ]


def expected_by_domain_rule(conn, rows: list[AcceptedRow]):
    """What the pure rule gives: allocations per UTR, overpayment per UTR, paid per installment."""
    outstanding: dict[int, list[OpenInstallment]] = defaultdict(list)
    for r in conn.execute(sa.select(installments)).all():
        if r.amount_paid_minor < r.amount_due_minor:
            outstanding[r.loan_id].append(
                OpenInstallment(
                    r.id, r.number, r.due_date, r.amount_due_minor - r.amount_paid_minor
                )
            )
    allocations, overpaid = {}, {}
    added: dict[int, int] = defaultdict(int)
    for row in sorted(rows, key=lambda r: (r.paid_on, r.row_number)):
        result = allocate(outstanding[row.loan_id], row.amount_minor)
        taken = dict(result.allocations)
        outstanding[row.loan_id] = [
            OpenInstallment(i.id, i.number, i.due_date, i.outstanding_minor - taken.get(i.id, 0))
            for i in outstanding[row.loan_id]
            if i.outstanding_minor - taken.get(i.id, 0) > 0
        ]
        allocations[row.utr] = sorted(result.allocations)
        overpaid[row.utr] = result.overpaid_minor
        for installment_id, amount in result.allocations:
            added[installment_id] += amount
    return allocations, overpaid, added


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_set_based_allocation_equals_the_domain_rule_for_random_payments(db, seed):
    rng = random.Random(seed)
    with db.begin() as conn:
        loan_ids = random_book(conn, rng, loans=40)
    rows = random_payments(rng, loan_ids, count=300)
    with db.connect() as conn:
        before = {r.id: r.amount_paid_minor for r in conn.execute(sa.select(installments))}
        expected_allocations, expected_overpaid, expected_added = expected_by_domain_rule(
            conn, rows
        )
    with db.begin() as conn:
        lock_posting(conn)
        posted = post_payments(conn, rows, source="file", posted_by="test", run_id=None)

    with db.connect() as conn:
        by_utr = {r.utr: r for r in conn.execute(sa.select(payments))}
        got = defaultdict(list)
        for p_utr, inst, amount, paid_on in conn.execute(
            sa.select(payments.c.utr, payment_allocations.c.installment_id,
                      payment_allocations.c.amount_minor, payment_allocations.c.paid_on)
            .join(payments, payments.c.id == payment_allocations.c.payment_id)
        ):  # fmt: skip
            got[p_utr].append((inst, amount))
            assert paid_on == by_utr[p_utr].paid_on
        after = {r.id: r.amount_paid_minor for r in conn.execute(sa.select(installments))}

    assert {utr: sorted(got[utr]) for utr in by_utr} == expected_allocations
    assert {utr: p.overpaid_minor for utr, p in by_utr.items()} == expected_overpaid
    assert {i: after[i] - before[i] for i in after if after[i] != before[i]} == {
        i: a for i, a in expected_added.items() if a
    }
    assert posted.payments == len(rows) == len(by_utr)
    assert posted.amount_minor == sum(r.amount_minor for r in rows)
    assert posted.allocations == sum(len(a) for a in expected_allocations.values())
    assert sorted((o["utr"], o["overpaid_minor"]) for o in posted.overpaid) == sorted(
        (utr, o) for utr, o in expected_overpaid.items() if o
    )
    assert any(expected_overpaid.values()), "the random book must exercise overpayment"
    # payments are numbered by loan, and within a loan in the order they were allocated
    row_of = {r.utr: r.row_number for r in rows}
    ordered = sorted(by_utr.values(), key=lambda p: p.id)
    assert [(p.loan_id, p.paid_on, row_of[p.utr]) for p in ordered] == sorted(
        (r.loan_id, r.paid_on, r.row_number) for r in rows
    )


def test_installments_paid_date_is_the_latest_allocation_and_a_second_batch_sees_the_first(db):
    with db.begin() as conn:
        loan = add_loan(conn, [(START + timedelta(days=30 * n), 100_00) for n in (1, 2, 3)])
    first = [
        AcceptedRow(2, "SBINN00000000002", loan, 60_00, START + timedelta(days=3)),
        AcceptedRow(1, "SBINN00000000001", loan, 60_00, START + timedelta(days=5)),
    ]
    with db.begin() as conn:
        lock_posting(conn)
        post_payments(conn, first, source="file", posted_by="t", run_id=None, file_id=None)
        # a second batch in the same transaction (a manual payment after a file) continues
        second = [AcceptedRow(1, "SBINN00000000003", loan, 250_00, START + timedelta(days=4))]
        posted = post_payments(conn, second, source="manual", posted_by="t", run_id=None)
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(installments.c.number, installments.c.amount_paid_minor,
                      installments.c.paid_on).order_by(installments.c.number)
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        (1, 100_00, START + timedelta(days=5)),
        (2, 100_00, START + timedelta(days=5)),
        (3, 100_00, START + timedelta(days=4)),
    ]
    assert posted.overpaid_minor == 250_00 - 80_00 - 100_00


def test_recorded_utr_lookup_finds_recorded_ones_among_values_that_need_quoting(db):
    with db.begin() as conn:
        loan = add_loan(conn, [])
        lock_posting(conn)
        post_payments(
            conn, [AcceptedRow(1, "SBINN00000000009", loan, 10_00, START)],
            source="manual", posted_by="t", run_id=None,
        )  # fmt: skip
    asked = ["SBINN00000000009", 'A"B', "C\\D", "E,F", "{G}", "NULL", "", " H "]
    with db.connect() as conn:
        assert recorded_utrs(conn, asked) == {"SBINN00000000009"}
        assert known_loans(conn, [loan, loan + 1]) == {loan: "ACTIVE"}


def test_posting_updates_installments_on_their_own_page_without_new_index_entries(db):
    """Full pages (a bulk-loaded book) would give each paid installment a new row version
    elsewhere and an entry in each of the three indexes; with room on the page (fillfactor,
    migration 0015) every update of the paid cache is heap-only (HOT)."""
    rng = random.Random(7)
    # Fresh pages, as a bulk-loaded book has: the per-test reset deletes rows, and the dead rows
    # of earlier tests would otherwise fill the pages this test writes.
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM FULL lending.installments")
    with db.begin() as conn:
        schedule = [(START + timedelta(days=30 * k), 100_00) for k in range(1, 13)]
        loan_ids = [add_loan(conn, schedule) for _ in range(60)]
    paid = rng.sample(loan_ids, 20)
    rows = [AcceptedRow(n, f"SBINN{n:011d}", loan, 150_00, START) for n, loan in enumerate(paid)]
    blocks = sa.text(  # the heap page of each installment's current row version
        "SELECT id, (ctid::text::point)[0] FROM lending.installments WHERE loan_id = ANY(:loans)"
    )
    with db.connect() as conn:
        before = dict(conn.execute(blocks, {"loans": paid}).all())
    with db.begin() as conn:
        lock_posting(conn)
        post_payments(conn, rows, source="file", posted_by="t", run_id=None)
    with db.connect() as conn:
        after = dict(conn.execute(blocks, {"loans": paid}).all())
        changed = conn.execute(
            sa.select(installments.c.id).where(installments.c.amount_paid_minor > 0)
        ).scalars().all()  # fmt: skip
    assert len(changed) == 40  # two installments of each paying loan
    assert {i: after[i] for i in changed} == {i: before[i] for i in changed}


def test_an_installment_paid_by_someone_else_while_the_plan_was_made_rolls_the_posting_back(
    db, monkeypatch
):
    """The plan reads the open installments without locking them; if one of those it allocates
    to changes before the write (another writer that skipped the posting lock), the write
    refuses and nothing of the batch is posted."""
    with db.begin() as conn:
        loan = add_loan(conn, [(START + timedelta(days=30 * n), 100_00) for n in (1, 2)])
    planned = posting.PLAN
    real_execute = sa.Connection.execute

    def execute_then_interfere(conn, statement, *args, **kwargs):
        result = real_execute(conn, statement, *args, **kwargs)
        if statement is planned:
            with db.begin() as other:  # a second connection pays installment 1 meanwhile
                other.execute(
                    sa.update(installments)
                    .where(installments.c.loan_id == loan, installments.c.number == 1)
                    .values(amount_paid_minor=100_00, paid_on=START)
                )
        return result

    monkeypatch.setattr(sa.Connection, "execute", execute_then_interfere)
    rows = [AcceptedRow(1, "SBINN00000000001", loan, 150_00, START + timedelta(days=3))]
    with pytest.raises(posting.StalePlanError, match="nothing was posted"), db.begin() as conn:
        lock_posting(conn)
        post_payments(conn, rows, source="file", posted_by="t", run_id=None)
    monkeypatch.undo()

    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(payments)).scalar() == 0
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(payment_allocations)).scalar() == 0
        )
        paid = conn.execute(
            sa.select(installments.c.number, installments.c.amount_paid_minor)
            .where(installments.c.loan_id == loan).order_by(installments.c.number)
        ).all()  # fmt: skip
    assert [tuple(r) for r in paid] == [(1, 100_00), (2, 0)], "only the other writer's change"
