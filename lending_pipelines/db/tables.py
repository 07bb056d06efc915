"""Imports every table module so `metadata` describes the whole schema (migration checks)."""

from . import (
    collections,  # noqa: F401
    common,  # noqa: F401
    credit,  # noqa: F401
    escrow,  # noqa: F401
    fineract_records,  # noqa: F401
    incidents,  # noqa: F401
    loans,  # noqa: F401
    payouts,  # noqa: F401
    rate_limit,  # noqa: F401
)
