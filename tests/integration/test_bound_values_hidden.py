"""Bound values (phone numbers, names, amounts) never appear in database errors: those errors
travel into Dagster events, run-failure alerts and logs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lending_pipelines.db.engine import get_engine

PHONE = "254712345678"


def test_a_failed_statement_names_the_sql_but_not_the_phone_number_it_carried(db_url):
    engine = get_engine(db_url)
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.connect() as conn:
        conn.execute(sa.text("SELECT CAST(:phone AS text), 1 / 0"), {"phone": PHONE})
    message = str(raised.value)
    assert "SELECT CAST" in message
    assert PHONE not in message
    assert "hidden due to hide_parameters" in message
