"""Markdown tables for asset metadata: what an operator reads in the Dagster UI."""

from collections.abc import Mapping, Sequence

import dagster as dg

# A table in the UI, not an export: rows past this are counted, not shown.
TABLE_ROWS = 100


def _cell(value: object) -> str:
    return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str],
    *,
    empty: str = "none",
    limit: int = TABLE_ROWS,
) -> dg.MetadataValue:
    """`rows` as a markdown table with `columns`; `empty` when there are none."""
    if not rows:
        return dg.MetadataValue.md(empty)
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n_and {len(rows) - limit} more_")
    return dg.MetadataValue.md("\n".join(lines))
