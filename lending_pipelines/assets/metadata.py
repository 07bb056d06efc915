"""Tables for asset metadata: what an operator reads (and sorts) in the Dagster UI."""

from collections.abc import Mapping, Sequence

import dagster as dg

# A table in the UI, not an export: rows past this are left out (the asset's counts say how many).
TABLE_ROWS = 100

_TYPES = ((bool, "bool"), (int, "int"), (float, "float"))


def _cell(value: object) -> str | int | float | bool | None:
    """A record value: numbers and flags as they are, anything else (Decimal, dates) as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _type(rows: Sequence[Mapping[str, object]], column: str) -> str:
    values = [row.get(column) for row in rows if row.get(column) is not None]
    for python_type, name in _TYPES:
        if values and all(isinstance(v, python_type) for v in values):
            if python_type is int and any(isinstance(v, bool) for v in values):
                continue
            return name
    return "string"


def table_metadata(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str],
    *,
    limit: int = TABLE_ROWS,
) -> dg.MetadataValue:
    """`rows` (the first `limit`) as a `MetadataValue.table` with `columns`; empty is empty."""
    shown = rows[:limit]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, type=_type(shown, c)) for c in columns])
    records = [dg.TableRecord({c: _cell(row.get(c)) for c in columns}) for row in shown]
    return dg.MetadataValue.table(records=records, schema=schema)
