"""Marking a held escrow disputed, without Dagster. The ledger is asked first: a release that
reached Blnk but not our records is recorded (recovered), and the dispute refused."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from ...db.escrow import (
    EscrowStateError,
    escrow_release_reference,
    mark_escrow_disputed,
    record_release,
    release_candidates,
)
from ...partners.blnk import BlnkClient, BlnkError


class DisputeRefused(Exception):
    """The escrow was not marked disputed; the message says why (and what was recorded)."""


def dispute_escrow(
    engine: sa.Engine,
    blnk: BlnkClient,
    *,
    escrow_id: int,
    actor: str,
    reason: str,
    run_id: str | None,
    business_date: date,
) -> None:
    """Freeze a held escrow as disputed so no release moves it, or raise DisputeRefused. A
    release found APPLIED in the ledger under the escrow's reference, matching the escrow, is
    recorded as released on `business_date` (committed) before the refusal is raised."""
    reference = escrow_release_reference(escrow_id)
    try:
        outcome = blnk.read_outcome(reference)
    except BlnkError as exc:
        raise DisputeRefused(f"cannot check {reference} in the ledger: {exc}") from exc
    if outcome is not None and outcome.awaiting:
        raise DisputeRefused(f"{reference} is queued in the ledger; dispute it once it is settled")
    released = None if outcome is None else outcome.transaction
    with engine.begin() as conn:
        if released is not None and released.status == "APPLIED":
            held = [
                candidate
                for candidate in release_candidates(conn, escrow_id=escrow_id)
                if candidate.status == "held"
            ]
            if held and outcome is not None:
                difference = outcome.differences(
                    amount=held[0].amount,
                    currency=held[0].currency,
                    source=str(held[0].source_balance_id),
                    destination=str(held[0].destination_balance_id),
                )
                if difference:  # not our release: an alert, not an update
                    raise DisputeRefused(
                        f"{reference} in the ledger ({released.transaction_id}) is not this "
                        f"escrow's release: {'; '.join(difference)}; nothing recorded"
                    )
                record_release(
                    conn,
                    held[0],
                    business_date=business_date,
                    transaction_id=released.transaction_id,
                    recovered=True,
                    actor=actor,
                    reason=f"found released in the ledger while disputing: {reason}",
                    run_id=run_id,
                )
        else:
            try:
                mark_escrow_disputed(conn, escrow_id, actor=actor, reason=reason, run_id=run_id)
            except EscrowStateError as exc:
                raise DisputeRefused(str(exc)) from exc
    if released is not None and released.status == "APPLIED":
        raise DisputeRefused(
            f"escrow {escrow_id} was already released in the ledger "
            f"({released.transaction_id}); recorded as released, not disputed"
        )
