"""The phone-number scan of the analytics schema, on the real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from lending_pipelines.db.privacy import PhoneFinding, phone_number_findings


@pytest.fixture
def scratch_schema(engine):
    schema = f"privacy_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield schema
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.mark.parametrize(
    "text",
    [
        "invalid phone '254712345678'",
        "receiver +254 712 345 678 not registered",
        "phone 0712-345-678 is not a Kenyan mobile number",
        "712345678",
        "call +91 98765 43210",
    ],
)
def test_a_phone_number_in_any_written_form_is_found_and_named_by_column(
    engine, scratch_schema, text
):
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {scratch_schema}.t (id int, reason text, n bigint)"))
        conn.execute(
            sa.text(f"INSERT INTO {scratch_schema}.t VALUES (1, :t, 254712345678)"), {"t": text}
        )
        conn.execute(
            sa.text(
                f"CREATE VIEW {scratch_schema}.v AS SELECT reason AS why FROM {scratch_schema}.t"
            )
        )
        findings = phone_number_findings(conn, scratch_schema)
    assert findings == [PhoneFinding("t", "reason", 1), PhoneFinding("v", "why", 1)]


@pytest.mark.parametrize(
    "text",
    [
        "phone 0712 *** 678 is not a Kenyan mobile number",
        "invalid phone '0700'",
        "receipt SX00000001",
        "0b6c4a1e-7123-4567-8901-712345678901",
        "amount 1500000 KES",
        "2026-12-01 10:00:00",
    ],
)
def test_masked_numbers_receipts_ids_amounts_and_dates_are_not_phone_numbers(
    engine, scratch_schema, text
):
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {scratch_schema}.t (reason text)"))
        conn.execute(sa.text(f"INSERT INTO {scratch_schema}.t VALUES (:t)"), {"t": text})
        assert phone_number_findings(conn, scratch_schema) == []
