"""Launchpad operations as plain functions: one transaction each, the change and its audit
entry together; a refusal (`CreditOperationError`) rolls back everything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...db.credit.manual import CreditOperationError, Operator

__all__ = ["CreditOperationError", "Operator", "run_operation"]


def run_operation(engine: sa.Engine, operation: Callable[[Connection], dict[str, Any]]) -> dict:
    """Run `operation(conn)` in one transaction; a dry run's transaction is rolled back too."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            outcome = operation(conn)
        except BaseException:
            transaction.rollback()
            raise
        if outcome.get("dry_run"):
            transaction.rollback()
        else:
            transaction.commit()
        return outcome
