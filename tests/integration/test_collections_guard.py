"""The financial guard: an UPDATE of a guarded column from a plain connection is refused by the
database naming the column, leaves a count that survives the rollback, and the guard sensor turns
it into a record and one alert incident; the pipeline's own writers still work."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_pipelines.db.collections.guard import as_writer, record_new_refusals
from lending_pipelines.db.collections.tables import GUARDED_COLUMNS, guard_refusals
from lending_pipelines.db.incidents import alert_incidents
from lending_pipelines.resources.alerts import AlertsResource
from lending_pipelines.sensors.collections_guard import collections_guard_sensor
from lending_pipelines.workflows.collections.dpd import run_dpd
from tests.collections_book import add_loan, loan_state

D = date(2026, 10, 31)

NEW_VALUES = {
    "dpd": "dpd + 5",
    "bucket": "'1-30'",
    "status": "'CLOSED'",
    "principal_minor": "principal_minor + 1",
    "loan_id": ":other",
    "number": "number + 10",
    "due_date": "due_date + 1",
    "amount_due_minor": "amount_due_minor + 1",
}


@pytest.fixture
def book(db):
    # the refusal counters are sequences, not emptied between tests: start from what they say
    with db.begin() as conn:
        record_new_refusals(conn)
        conn.execute(sa.delete(guard_refusals))
        loan = add_loan(conn, [(D - timedelta(days=40), 100_00)])
        other = add_loan(conn, [(D - timedelta(days=10), 100_00)])
    return loan, other


def tick(database):
    context = dg.build_sensor_context(resources={"database": database, "alerts": AlertsResource()})
    return collections_guard_sensor(context)


@pytest.mark.parametrize(("table", "column"), sorted(GUARDED_COLUMNS))
def test_a_direct_update_of_a_guarded_column_is_refused_naming_it(db, book, table, column):
    loan, other = book
    key = "id" if table == "collection_loans" else "loan_id"
    with db.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
        conn.execute(
            sa.text(
                f"UPDATE lending.{table} SET {column} = {NEW_VALUES[column]} WHERE {key} = :id"
            ),
            {"id": loan, "other": other},
        )
    assert f"financial guard: {table}.{column}" in str(refused.value.orig)
    assert refused.value.orig.diag.column_name == column
    assert refused.value.orig.sqlstate == "42501"
    with db.connect() as conn:
        assert loan_state(conn, loan)[1:] == ("current", "ACTIVE")


def test_refused_attempts_survive_the_rollback_and_are_recorded_and_alerted_once(
    db, database, book
):
    loan, _ = book
    for _ in range(2):
        with db.connect() as conn:
            transaction = conn.begin()
            with pytest.raises(sa.exc.DBAPIError):
                conn.execute(sa.text("UPDATE lending.collection_loans SET dpd = 0, status = "
                                     "'CLOSED' WHERE id = :id"), {"id": loan})  # fmt: skip
            transaction.rollback()
    with db.begin() as conn:  # a status change under the DPD job's marker is refused too
        as_writer(conn, "dpd")
        with pytest.raises(sa.exc.DBAPIError, match="collection_loans.status"):
            with conn.begin_nested():
                conn.execute(sa.text("UPDATE lending.collection_loans SET status = 'CLOSED'"))

    result = tick(database)
    assert "collection_loans.status x3" in result.skip_message
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(guard_refusals.c.table_name, guard_refusals.c.column_name,
                      guard_refusals.c.refusals)
        ).all()  # fmt: skip
        incident = conn.execute(sa.select(alert_incidents)).one()
    assert [tuple(r) for r in rows] == [("collection_loans", "status", 3)]
    assert incident.key == "collections_financial_guard" and incident.resolved_at is None

    assert "no refused change" in tick(database).skip_message
    with db.connect() as conn:
        assert conn.execute(sa.select(guard_refusals)).rowcount == 1
        assert conn.execute(sa.select(alert_incidents.c.resolved_at)).scalar_one() is not None


def test_the_pipelines_own_writers_still_change_the_guarded_columns(db, book):
    loan, _ = book
    run_dpd(db, [D], run_id="test")
    with db.connect() as conn:
        assert loan_state(conn, loan) == (40, "31-60", "ACTIVE")
    with db.begin() as conn:
        as_writer(conn, "close")
        conn.execute(
            sa.text("UPDATE lending.collection_loans SET status = 'CLOSED' WHERE id = :id"),
            {"id": loan},
        )
    with db.connect() as conn:
        assert loan_state(conn, loan)[2] == "CLOSED"
        assert record_new_refusals(conn) == []


@pytest.mark.parametrize("table", ["collection_loans", "installments"])
def test_deleting_a_loan_or_an_installment_is_refused_and_counted(db, database, book, table):
    loan, _ = book
    key = "id" if table == "collection_loans" else "loan_id"
    with db.connect() as conn, pytest.raises(sa.exc.DBAPIError) as refused:
        conn.execute(sa.text(f"DELETE FROM lending.{table} WHERE {key} = :id"), {"id": loan})
    assert f"of {table} cannot be deleted" in str(refused.value.orig)
    assert refused.value.orig.sqlstate == "42501"
    assert f"{table}.row_delete x1" in tick(database).skip_message
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lending.installments")).scalar() == 2
