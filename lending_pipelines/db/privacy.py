"""Personal data that must not reach the analytics schema: a scan for phone numbers.

Analytics leaves borrowers' phones out on purpose; a number can still slip in through free
text (a failure reason quoting a provider's message). The scan looks at every text column of
every table and view in the schema, in one statement, and reports where numbers were found —
never the numbers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

# A Kenyan or Indian-style mobile number in any common written form (`254712345678`,
# `+254 712 345 678`, `0712-345-678`, `712345678`, `+91 98765 43210`), standing alone: not part
# of a longer run of letters and digits such as a receipt or a UUID.
PHONE_PATTERN = (
    r"(^|[^0-9A-Za-z])(\+?254[ -]?|\+?91[ -]?|0)?"
    r"([17][0-9]{2}[ -]?[0-9]{3}[ -]?[0-9]{3}|[6-9][0-9]{4}[ -]?[0-9]{5})"
    r"($|[^0-9A-Za-z])"
)
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb")


@dataclass(frozen=True)
class PhoneFinding:
    relation: str
    column: str
    rows: int


def _text_columns(conn: Connection, schema: str) -> list[tuple[str, str]]:
    return [
        (row.table_name, row.column_name)
        for row in conn.execute(
            sa.text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = :schema AND data_type = ANY(:types) "
                "ORDER BY table_name, ordinal_position"
            ),
            {"schema": schema, "types": list(TEXT_TYPES)},
        )
    ]


def phone_number_findings(conn: Connection, schema: str) -> list[PhoneFinding]:
    """Every (relation, column) of `schema` holding something that looks like a phone number."""
    columns = _text_columns(conn, schema)
    if not columns:
        return []
    quote = conn.dialect.identifier_preparer.quote
    parts = [
        f"SELECT :r{n} AS relation, :c{n} AS col, count(*) AS hits "
        f"FROM {quote(schema)}.{quote(table)} WHERE {quote(column)}::text ~ :pattern"
        for n, (table, column) in enumerate(columns)
    ]
    params: dict[str, str] = {"pattern": PHONE_PATTERN}
    for n, (table, column) in enumerate(columns):
        params[f"r{n}"], params[f"c{n}"] = table, column
    rows = conn.execute(sa.text(" UNION ALL ".join(parts)), params).all()
    return [PhoneFinding(row.relation, row.col, row.hits) for row in rows if row.hits]
