"""Blnk payloads (API_CONTRACTS.md §4), one pydantic model each — ledger, balance,
transaction — which are also the values the client returns: amounts are integers in minor units
(`precise_amount`; Blnk writes big.Int as a JSON number, a digit string is read exactly, a float
never), a body that does not validate is a `BlnkPayloadError` naming the object, field and
value."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import Field
from pydantic_core import ValidationError

from ..payloads import MISSING, Expect, Payload, first_problem, refuse
from .errors import PARTNER, BlnkPayloadError


def _minor_units(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.strip().removeprefix("-").isdigit():
        return int(value)
    raise refuse("an integer (minor units)")


# An amount in minor units: a JSON integer or a digit string; never a float (not exact past 2**53).
MinorUnits = Annotated[
    int, pydantic.PlainValidator(_minor_units), Expect("an integer (minor units)")
]
Id = Annotated[
    str, pydantic.StringConstraints(strict=True, min_length=1), Expect("a non-empty string")
]
# Optional text: absent or null reads as "".
Text = Annotated[pydantic.StrictStr, pydantic.BeforeValidator(lambda v: "" if v is None else v)]
# Optional tag: absent, null or "" reads as None.
Tag = Annotated[pydantic.StrictStr | None, pydantic.BeforeValidator(lambda v: v or None)]
Meta = Annotated[dict[str, Any], pydantic.BeforeValidator(lambda v: {} if v is None else v)]


class BlnkLedger(Payload):
    ledger_id: Id
    name: Text = ""
    meta_data: Meta = Field(default_factory=dict)


class BlnkBalance(Payload):
    """A balance; every amount is an integer in minor units."""

    balance_id: Id
    ledger_id: Text = ""
    currency: Id
    balance: MinorUnits
    credit_balance: MinorUnits = 0
    debit_balance: MinorUnits = 0
    inflight_balance: MinorUnits = 0
    inflight_credit_balance: MinorUnits = 0
    inflight_debit_balance: MinorUnits = 0
    indicator: Tag = None
    identity_id: Tag = None
    version: pydantic.StrictInt | None = None
    meta_data: Meta = Field(default_factory=dict)

    @property
    def available(self) -> int:
        """What can still be debited: the balance less funds held by inflight debits."""
        return self.balance - self.inflight_debit_balance


class BlnkTransaction(Payload):
    """A ledger transaction. `precise_amount` (minor units) is required unless a server sends
    only `amount`, which must then be an exact multiple of 1/`precision`."""

    transaction_id: Id
    reference: Id
    status: Annotated[Id, pydantic.AfterValidator(str.upper)]
    precision: Annotated[pydantic.StrictInt, Field(ge=1), Expect("an integer >= 1")] = 1
    precise_amount: MinorUnits
    currency: Id
    source: Text = ""
    destination: Text = ""
    description: Text = ""
    parent_transaction: Text = ""
    meta_data: Meta = Field(default_factory=dict)
    created_at: pydantic.StrictStr | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _amount_times_precision(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or raw.get("precise_amount") is not None:
            return raw
        amount, precision = raw.get("amount"), raw.get("precision", 1)
        if type(precision) is not int or precision < 1:
            return raw  # the precision field reports itself
        try:
            if isinstance(amount, bool | type(None)):
                raise ArithmeticError
            scaled = Decimal(str(amount)) * precision
        except ArithmeticError:
            raise _field_error("amount", amount, "a number") from None
        if scaled != scaled.to_integral_value():
            raise _field_error("amount", amount, f"a multiple of 1/{precision}")
        return {**raw, "precise_amount": int(scaled)}

    @property
    def rejection_reason(self) -> str | None:
        reason = self.meta_data.get("blnk_rejection_reason")
        return None if reason is None else str(reason)


def _field_error(field: str, value: Any, expected: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "BlnkTransaction", [{"type": refuse(expected), "loc": (field,), "input": value}]
    )


@dataclass(frozen=True)
class PostedTransaction:
    """The outcome of a post: the ledger's transaction, and whether it existed already."""

    transaction: BlnkTransaction
    already_applied: bool


@dataclass(frozen=True)
class LedgerOutcome:
    """What the ledger did with a reference, read back after a post or on its own.

    `transaction` is the row that carries the outcome: the transaction itself, or for a post
    that went through Blnk's queue the `<ref>_q` child (APPLIED, INFLIGHT or REJECTED); None
    while the queue has not processed it yet (`awaiting`). `queued` is the QUEUED parent, if
    any. `recovered`: the outcome belongs to an earlier post of the same reference.
    """

    reference: str
    transaction: BlnkTransaction | None
    recovered: bool
    queued: BlnkTransaction | None = None

    @property
    def awaiting(self) -> bool:
        return self.transaction is None

    def differences(
        self, *, amount: int, currency: str, source: str, destination: str
    ) -> list[str]:
        """How the outcome differs from the transfer we meant (empty: it matches, or it is
        still awaited)."""
        txn = self.transaction
        if txn is None:
            return []
        expected = {
            "precise_amount": amount,
            "currency": currency,
            "source": source,
            "destination": destination,
        }
        found = {
            "precise_amount": txn.precise_amount,
            "currency": txn.currency,
            "source": txn.source,
            "destination": txn.destination,
        }
        return [
            f"{name} is {found[name]!r}, expected {value!r}"
            for name, value in expected.items()
            if found[name] != value
        ]


# --- parsing -------------------------------------------------------------------------------

M = TypeVar("M", bound=Payload)
_KINDS = {BlnkLedger: "ledger", BlnkBalance: "balance", BlnkTransaction: "transaction"}
_ID_FIELDS = {BlnkLedger: "ledger_id", BlnkBalance: "balance_id", BlnkTransaction: "transaction_id"}


def parse(model: type[M], body: Any, hint: object = None) -> M:
    """`body` as `model`, or BlnkPayloadError naming the object (its id, else `hint`), the
    field and the value."""
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        kind = _KINDS[model]
        if not isinstance(body, dict):
            raise BlnkPayloadError(
                f"{PARTNER} {kind} {hint!r}: body is {body!r:.200}, expected an object"
            ) from None
        own_id = body.get(_ID_FIELDS[model])
        obj_id = own_id if isinstance(own_id, str) and own_id else hint
        problem = first_problem(model, exc)
        value = None if problem.value is MISSING else problem.value
        raise BlnkPayloadError(
            f"{PARTNER} {kind} {obj_id!r}: field {problem.field!r} is {value!r:.200}, "
            f"expected {problem.expected}"
        ) from None


def parse_ledger(body: Any, hint: object = None) -> BlnkLedger:
    return parse(BlnkLedger, body, hint)


def parse_balance(body: Any, hint: object = None) -> BlnkBalance:
    return parse(BlnkBalance, body, hint)


def parse_transaction(body: Any, hint: object = None) -> BlnkTransaction:
    return parse(BlnkTransaction, body, hint)
