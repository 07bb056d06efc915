"""The set-based auto-deduct ships its wallet readings cheaply and exactly: two strings split by
the server (binding 100,000 readings as array elements cost more than the statement), split
back into exactly the ids and balances that were read."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from lending_pipelines.db.escrow import auto_deduct_settings, compute_deductions, retailer_debts

IDS = ["R,1", "R 2", "Ré-3", "R'4", 'R"5', "R\\6", "R{7}", "R\t8"]


def _load(conn: sa.Connection, ids: list[str]) -> None:
    conn.execute(
        sa.insert(retailer_debts),
        [{"retailer_id": r, "currency": "RWF", "outstanding_amount": 100_000} for r in ids],
    )
    conn.execute(
        sa.insert(auto_deduct_settings),
        [{"retailer_id": r, "enabled": True, "percentage": Decimal(10)} for r in ids],
    )


def _compute(conn, readings):
    return compute_deductions(
        conn, "RWF", readings, default_percentage=Decimal(30), default_minimum=0
    )


def test_wallet_readings_travel_as_two_strings_not_one_bound_value_per_retailer(db):
    ids = [f"R{n:05d}" for n in range(2_000)]
    bound: list[dict] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "string_to_array" in statement or "unnest" in statement:
            bound.append(parameters)

    sa.event.listen(db, "before_cursor_execute", capture)
    try:
        with db.connect() as conn, conn.begin() as transaction:
            _load(conn, ids)
            rows = _compute(conn, [(r, 50_000 + n) for n, r in enumerate(ids)])
            transaction.rollback()
    finally:
        sa.event.remove(db, "before_cursor_execute", capture)
    assert {row.retailer_id: row.amount for row in rows} == {r: 10_000 for r in ids}
    (parameters,) = bound
    assert not [name for name, value in parameters.items() if isinstance(value, list | tuple)]


def test_ids_with_commas_quotes_and_tabs_split_back_exactly(db):
    with db.connect() as conn, conn.begin() as transaction:
        _load(conn, IDS)
        rows = _compute(conn, [(r, 200_000 + n) for n, r in enumerate(IDS)])
        transaction.rollback()
    assert {(row.retailer_id, row.wallet_balance) for row in rows} == {
        (r, 200_000 + n) for n, r in enumerate(IDS)
    }


@pytest.mark.parametrize("bad", ["R\x1f9", ""])
def test_a_retailer_id_that_would_not_split_back_is_refused_naming_it(db, bad):
    with db.connect() as conn, pytest.raises(ValueError, match="retailer_id") as raised:
        _compute(conn, [("R1", 50_000), (bad, 60_000)])
    assert repr(bad) in str(raised.value)


def test_a_wallet_balance_that_is_not_an_integer_fails_the_statement(db):
    with db.connect() as conn, conn.begin() as transaction:
        _load(conn, ["R1"])
        with pytest.raises(sa.exc.DataError, match="1.5"):
            _compute(conn, [("R1", 1.5)])
        transaction.rollback()
