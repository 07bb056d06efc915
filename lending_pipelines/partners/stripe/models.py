"""Typed results of Stripe Connect calls (amounts in minor units), parsed from SDK objects
into the error taxonomy of `errors.py` when a field is not what we need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import pydantic

from .errors import StripeConnectError, StripeErrorKind, StripeEventShapeError


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


# --- event payloads (stored by the receiver once their signature verifies; still untrusted) ----


class _Payload(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)


class TransferEventObject(_Payload):
    """`data.object` of transfer.reversed / transfer.updated: only a hint, the transfer itself is
    retrieved from Stripe before anything is applied."""

    id: Annotated[str, pydantic.StringConstraints(strict=True, min_length=1)]
    amount_reversed: int | None = None  # the event's copy; not an integer: no hint

    @pydantic.field_validator("amount_reversed", mode="before")
    @classmethod
    def _hint_only(cls, value: object) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class AccountRequirements(_Payload):
    past_due: list[pydantic.StrictStr] | None = None
    currently_due: list[pydantic.StrictStr] | None = None
    disabled_reason: pydantic.StrictStr | None = None


class AccountCapabilities(_Payload):
    transfers: pydantic.StrictStr | None = None  # active | inactive | pending


class AccountEventObject(_Payload):
    """`data.object` of account.updated: the connected account's payout state."""

    id: Annotated[str, pydantic.StringConstraints(strict=True, min_length=1)]
    payouts_enabled: pydantic.StrictBool | None = None
    capabilities: AccountCapabilities | None = None
    requirements: AccountRequirements | None = None

    @property
    def requirements_due(self) -> list[str]:
        """Past-due then currently-due requirements, each once."""
        req = self.requirements or AccountRequirements()
        return list(dict.fromkeys((req.past_due or []) + (req.currently_due or [])))


class _TransferEventData(_Payload):
    object: TransferEventObject


class _AccountEventData(_Payload):
    object: AccountEventObject


class TransferEvent(_Payload):
    """transfer.reversed / transfer.updated, as stored."""

    data: _TransferEventData


class AccountEvent(_Payload):
    """account.updated, as stored: `created` (Unix seconds) orders the account states."""

    created: pydantic.StrictInt
    data: _AccountEventData


EventT = TypeVar("EventT", bound=_Payload)


def parse_event(model: type[EventT], event_id: str, payload: Any) -> EventT:
    """One stored event's payload as `model`, or StripeEventShapeError naming the first field
    that is missing or of the wrong type, with its value."""
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        value = "missing" if error["type"] == "missing" else f"{error['input']!r}"[:120]
        raise StripeEventShapeError(
            f"stripe event {event_id}: field {where!r} is {value} ({error['msg']})"
        ) from None
