"""What an operator reads in a metadata table, as text to search in."""

import dagster as dg


def shown(value: object) -> str:
    """A `MetadataValue.table` (or its `.value`) as its cells, one line per row."""
    if isinstance(value, dg.TableMetadataValue):
        return "\n".join(
            " | ".join(str(cell) for cell in record.data.values()) for record in value.records
        )
    return str(value.value if isinstance(value, dg.MetadataValue) else value)
