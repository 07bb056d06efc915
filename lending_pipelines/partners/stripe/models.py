"""Typed results of Stripe Connect calls (amounts in minor units), parsed from SDK objects
into the error taxonomy of `errors.py` when a field is not what we need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import StripeConnectError, StripeErrorKind


@dataclass(frozen=True)
class ConnectAccountStatus:
    account_id: str
    payouts_enabled: bool
    transfers_capability: str | None  # active | inactive | pending | None (not requested)
    details_submitted: bool
    currently_due: tuple[str, ...] = ()
    past_due: tuple[str, ...] = ()
    disabled_reason: str | None = None

    @property
    def can_receive_transfers(self) -> bool:
        return self.payouts_enabled and self.transfers_capability == "active"

    @property
    def requirements_due(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.past_due + self.currently_due))

    def ineligibility_reason(self) -> str | None:
        """Why payouts to this account cannot be made now, or None."""
        if not self.payouts_enabled:
            return f"payouts disabled ({self.disabled_reason or 'no reason given'})"
        if self.transfers_capability != "active":
            return f"transfers capability is {self.transfers_capability or 'not requested'}"
        return None


@dataclass(frozen=True)
class Transfer:
    id: str
    amount: int
    currency: str
    destination: str
    transfer_group: str | None
    created: int
    amount_reversed: int = 0
    reversed: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    replayed: bool = False  # answered from Stripe's idempotency store


@dataclass(frozen=True)
class TransferReversal:
    id: str
    transfer_id: str
    amount: int
    currency: str


def int_field(obj: Any, name: str, operation: str, object_id: str | None) -> int:
    value = obj.get(name) if hasattr(obj, "get") else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StripeConnectError(
            StripeErrorKind.INVALID_REQUEST,
            f"field {name!r} is {value!r}, expected an integer amount in minor units",
            operation=operation,
            object_id=object_id,
        )
    return value


def to_transfer(obj: Any, operation: str, replayed: bool = False) -> Transfer:
    transfer_id = obj.get("id")
    if not isinstance(transfer_id, str) or not transfer_id.startswith("tr_"):
        raise StripeConnectError(
            StripeErrorKind.INVALID_REQUEST,
            f"field 'id' is {transfer_id!r}, expected a transfer id 'tr_...'",
            operation=operation,
        )
    metadata = obj.get("metadata") or {}
    return Transfer(
        id=transfer_id,
        amount=int_field(obj, "amount", operation, transfer_id),
        currency=str(obj.get("currency") or ""),
        destination=str(obj.get("destination") or ""),
        transfer_group=obj.get("transfer_group"),
        created=int_field(obj, "created", operation, transfer_id),
        amount_reversed=int(obj.get("amount_reversed") or 0),
        reversed=bool(obj.get("reversed")),
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
        replayed=replayed,
    )
