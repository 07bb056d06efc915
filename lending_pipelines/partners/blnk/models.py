"""Blnk payloads as typed values (amounts as integers in minor units, `precise_amount`),
parsed from response bodies into `BlnkPayloadError` when a field is not what we need."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import PARTNER, BlnkPayloadError


@dataclass(frozen=True)
class BlnkLedger:
    ledger_id: str
    name: str
    meta_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BlnkBalance:
    """A balance; every amount is an integer in minor units."""

    balance_id: str
    ledger_id: str
    currency: str
    balance: int
    credit_balance: int
    debit_balance: int
    inflight_balance: int
    inflight_credit_balance: int
    inflight_debit_balance: int
    indicator: str | None = None
    identity_id: str | None = None
    version: int | None = None
    meta_data: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> int:
        """What can still be debited: the balance less funds held by inflight debits."""
        return self.balance - self.inflight_debit_balance


@dataclass(frozen=True)
class BlnkTransaction:
    transaction_id: str
    reference: str
    status: str
    precise_amount: int
    precision: int
    currency: str
    source: str
    destination: str
    description: str = ""
    parent_transaction: str = ""
    meta_data: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None

    @property
    def rejection_reason(self) -> str | None:
        reason = self.meta_data.get("blnk_rejection_reason")
        return None if reason is None else str(reason)


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


def _payload_error(kind: str, obj_id: object, name: str, value: object, expected: str) -> Exception:
    return BlnkPayloadError(
        f"{PARTNER} {kind} {obj_id!r}: field {name!r} is {value!r}, expected {expected}"
    )


def _int_field(kind: str, obj: Mapping[str, Any], obj_id: object, name: str, default=None) -> int:
    """An integer amount. Blnk serialises big.Int as a JSON number; a digit string is accepted."""
    value = obj.get(name, default)
    if isinstance(value, bool):
        raise _payload_error(kind, obj_id, name, value, "an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().removeprefix("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _payload_error(kind, obj_id, name, value, "an integer")


def _str_field(
    kind: str, obj: Mapping[str, Any], obj_id: object, name: str, *, required: bool = True
) -> str:
    value = obj.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _payload_error(kind, obj_id, name, value, "a non-empty string")
    return value


def _meta(kind: str, obj: Mapping[str, Any], obj_id: object) -> dict[str, Any]:
    value = obj.get("meta_data")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _payload_error(kind, obj_id, "meta_data", value, "an object")
    return value


def _object(kind: str, body: Any, hint: object) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise BlnkPayloadError(f"{PARTNER} {kind} {hint!r}: body is {body!r}, expected an object")
    return body


def parse_ledger(body: Any, hint: object = None) -> BlnkLedger:
    obj = _object("ledger", body, hint)
    ledger_id = _str_field("ledger", obj, hint, "ledger_id")
    return BlnkLedger(
        ledger_id=ledger_id,
        name=_str_field("ledger", obj, ledger_id, "name", required=False),
        meta_data=_meta("ledger", obj, ledger_id),
    )


def parse_balance(body: Any, hint: object = None) -> BlnkBalance:
    obj = _object("balance", body, hint)
    balance_id = _str_field("balance", obj, hint, "balance_id")

    def amount(name: str) -> int:
        return _int_field("balance", obj, balance_id, name, default=0)

    version = obj.get("version")
    return BlnkBalance(
        balance_id=balance_id,
        ledger_id=_str_field("balance", obj, balance_id, "ledger_id", required=False),
        currency=_str_field("balance", obj, balance_id, "currency"),
        balance=_int_field("balance", obj, balance_id, "balance"),
        credit_balance=amount("credit_balance"),
        debit_balance=amount("debit_balance"),
        inflight_balance=amount("inflight_balance"),
        inflight_credit_balance=amount("inflight_credit_balance"),
        inflight_debit_balance=amount("inflight_debit_balance"),
        indicator=obj.get("indicator") or None,
        identity_id=obj.get("identity_id") or None,
        version=None if version is None else _int_field("balance", obj, balance_id, "version"),
        meta_data=_meta("balance", obj, balance_id),
    )


def _precise_amount(obj: Mapping[str, Any], txn_id: str, precision: int) -> int:
    """`precise_amount` (minor units) or, when a server omits it, `amount` x `precision`."""
    if obj.get("precise_amount") is not None:
        return _int_field("transaction", obj, txn_id, "precise_amount")
    raw = obj.get("amount")
    try:
        scaled = Decimal(str(raw)) * precision
    except (InvalidOperation, TypeError):
        raise _payload_error("transaction", txn_id, "amount", raw, "a number") from None
    if isinstance(raw, bool) or scaled != scaled.to_integral_value():
        raise _payload_error("transaction", txn_id, "amount", raw, f"a multiple of 1/{precision}")
    return int(scaled)


def parse_transaction(body: Any, hint: object = None) -> BlnkTransaction:
    obj = _object("transaction", body, hint)
    txn_id = _str_field("transaction", obj, hint, "transaction_id")
    precision = _int_field("transaction", obj, txn_id, "precision", default=1)
    if precision < 1:
        raise _payload_error("transaction", txn_id, "precision", precision, "an integer >= 1")
    return BlnkTransaction(
        transaction_id=txn_id,
        reference=_str_field("transaction", obj, txn_id, "reference"),
        status=_str_field("transaction", obj, txn_id, "status").upper(),
        precise_amount=_precise_amount(obj, txn_id, precision),
        precision=precision,
        currency=_str_field("transaction", obj, txn_id, "currency"),
        source=_str_field("transaction", obj, txn_id, "source", required=False),
        destination=_str_field("transaction", obj, txn_id, "destination", required=False),
        description=_str_field("transaction", obj, txn_id, "description", required=False),
        parent_transaction=_str_field(
            "transaction", obj, txn_id, "parent_transaction", required=False
        ),
        meta_data=_meta("transaction", obj, txn_id),
        created_at=obj.get("created_at"),
    )
