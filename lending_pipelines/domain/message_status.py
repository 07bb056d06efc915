"""Delivery statuses of an outbound message, as a provider reports them (Twilio's values).

Status callbacks can arrive late, twice or out of order, so a reported status is only applied
when it is further along than the one recorded:

    queued/accepted/scheduled < sending < sent < delivered < read < failed/undelivered/canceled

A failure is final: nothing overrides it, and it overrides anything recorded before it (Twilio
never reports both a delivery and a failure for one message; if it did, the failure is the one
somebody has to act on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

RANK: dict[str, int] = {
    "queued": 0,
    "accepted": 0,
    "scheduled": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "failed": 5,
    "undelivered": 5,
    "canceled": 5,
}
FAILURES = frozenset({"failed", "undelivered", "canceled"})


class UnknownStatusError(ValueError):
    """A status that is not an outbound message's delivery status (e.g. `received`)."""


def rank(status: str) -> int:
    try:
        return RANK[status]
    except KeyError:
        raise UnknownStatusError(
            f"MessageStatus {status!r} is not an outbound message status; known: {sorted(RANK)}"
        ) from None


@dataclass(frozen=True)
class DeliveryUpdate:
    """One reported status of the message the provider knows as `provider_message_id`."""

    provider_message_id: str
    status: str
    error_code: int | None = None
    reported_at: datetime | None = None

    @property
    def rank(self) -> int:
        return rank(self.status)

    @property
    def failure(self) -> str | None:
        """The text recorded as the message's last error, None unless this is a failure."""
        if self.status not in FAILURES:
            return None
        return f"{self.status}: error code {self.error_code}" if self.error_code else self.status


def furthest(updates: Iterable[DeliveryUpdate]) -> dict[str, DeliveryUpdate]:
    """Per message, the update furthest along (the first one reported among equals)."""
    best: dict[str, DeliveryUpdate] = {}
    for update in updates:
        current = best.get(update.provider_message_id)
        if current is None or update.rank > current.rank:
            best[update.provider_message_id] = update
    return best
