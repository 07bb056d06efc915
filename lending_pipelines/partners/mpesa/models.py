"""Daraja payloads as typed values: the synchronous acknowledgement and the parsed result
callback (B2C or transaction-status), whose every field is checked and named on error."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ...domain.disbursement import StatusAnswer
from .errors import MpesaPayloadError

# --- typed data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledgement:
    """The synchronous answer to B2C / status query: accepted for processing, not a result."""

    conversation_id: str
    originator_conversation_id: str
    response_code: str
    response_description: str


@dataclass(frozen=True)
class MpesaResult:
    """A parsed `{"Result": {...}}` callback (B2C result or transaction-status result)."""

    result_type: int
    result_code: str
    result_desc: str
    originator_conversation_id: str
    conversation_id: str
    transaction_id: str | None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    reference: Mapping[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.result_code == "0"

    @property
    def is_status_query(self) -> bool:
        """A found transaction's status. (A query that found nothing looks like a failed B2C
        result; only the ids it carries tell them apart.)"""
        return "TransactionStatus" in self.parameters

    @property
    def receipt(self) -> str | None:
        """The M-Pesa transaction id (receipt) of the payment this result is about."""
        for key in ("TransactionReceipt", "ReceiptNo"):
            if self.parameters.get(key):
                return str(self.parameters[key])
        return self.transaction_id

    @property
    def amount(self) -> Decimal | None:
        for key in ("TransactionAmount", "Amount"):
            value = self.parameters.get(key)
            if value is not None and value != "":
                return Decimal(str(value))
        return None

    @property
    def queried_originator_conversation_id(self) -> str | None:
        """For a status-query result: the B2C request it describes (the query's own ids differ).
        Taken from the result parameters, else from the Occasion we sent with the query."""
        value = self.parameters.get("OriginatorConversationID") or self.reference.get("Occasion")
        return str(value) if value else None

    @property
    def queried_conversation_id(self) -> str | None:
        """For a status-query result: the ConversationID of the B2C payment it describes."""
        value = self.parameters.get("ConversationID")
        return str(value) if value else None

    def status_answer(self) -> StatusAnswer:
        """This result as the plain answer `domain.disbursement.judge_status_answer` judges."""
        amount = self.parameters.get("Amount")
        try:
            parsed = Decimal(str(amount)) if amount not in (None, "") else None
        except ArithmeticError:
            parsed = None
        reason_code = self.parameters.get("TransactionReason")
        return StatusAnswer(
            result_code=self.result_code,
            transaction_status=self.transaction_status,
            originator_conversation_id=(
                str(self.parameters["OriginatorConversationID"])
                if self.parameters.get("OriginatorConversationID")
                else None
            ),
            conversation_id=self.queried_conversation_id,
            amount=parsed,
            receiver=(
                str(self.parameters["CreditPartyName"])
                if self.parameters.get("CreditPartyName")
                else None
            ),
            receipt=str(self.parameters["ReceiptNo"]) if self.parameters.get("ReceiptNo") else None,
            reason_code=str(reason_code).strip() if reason_code not in (None, "") else None,
            reason_text=str(self.parameters.get("ReasonType") or self.result_desc or ""),
        )

    @property
    def transaction_status(self) -> str | None:
        value = self.parameters.get("TransactionStatus")
        return str(value) if value is not None else None


RESULT_CODE = re.compile(r"^[A-Za-z0-9_]+$")


def _result_code(value: object, ocid: str | None) -> str:
    """An integer (or a digit string) or one of Daraja's alphanumeric codes (`SFC_IC0003`).
    Anything else — 0.5, "0.4", "", a list — is a malformed callback: truncating it could turn
    it into "0", a success."""

    def malformed() -> MpesaPayloadError:
        return MpesaPayloadError(
            f"M-Pesa result {ocid!r}: field 'Result.ResultCode' is {value!r:.40}, expected an "
            "integer code",
            shortcode="",
            originator_conversation_id=ocid,
        )

    if isinstance(value, bool) or value is None:
        raise malformed()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if Decimal(str(value)) != Decimal(str(value)).to_integral_value():
            raise malformed()
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return str(int(text))
        if RESULT_CODE.match(text) and not text.replace("_", "").isdigit():
            return text
    raise malformed()


def _key_values(raw: object, ocid: str | None, where: str) -> dict[str, Any]:
    """`{"ResultParameter": [{"Key": k, "Value": v}, ...]}` — a list or a single object; an item
    without Value (e.g. `{"Key": "CreditPartyCharges"}`) maps to None."""
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, dict):
        raise MpesaPayloadError(
            f"M-Pesa result {ocid!r}: field {where!r} is {raw!r:.80}, expected an object",
            shortcode="",
            originator_conversation_id=ocid,
        )
    items = next(iter(raw.values()), None) if raw else None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise MpesaPayloadError(
            f"M-Pesa result {ocid!r}: field {where!r} is {raw!r:.80}, expected Key/Value items",
            shortcode="",
            originator_conversation_id=ocid,
        )
    values: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or "Key" not in item:
            raise MpesaPayloadError(
                f"M-Pesa result {ocid!r}: item {item!r:.80} in {where!r} has no Key",
                shortcode="",
                originator_conversation_id=ocid,
            )
        values[str(item["Key"])] = item.get("Value")
    return values


def parse_result_callback(payload: object) -> MpesaResult:
    """Parse a ResultURL body. ResultCode/ResultType may be ints or strings; failed results
    carry no ResultParameters; ResultParameter may be a list or one object."""
    result = payload.get("Result") if isinstance(payload, dict) else None
    if not isinstance(result, dict):
        raise MpesaPayloadError(
            f"M-Pesa callback: field 'Result' is {result!r:.80}, expected an object",
            shortcode="",
        )
    ocid = result.get("OriginatorConversationID")
    if not isinstance(ocid, str) or not ocid:
        raise MpesaPayloadError(
            f"M-Pesa callback: field 'Result.OriginatorConversationID' is {ocid!r:.80}, "
            "expected a string",
            shortcode="",
        )
    conversation_id = result.get("ConversationID")
    if not isinstance(conversation_id, str):
        raise MpesaPayloadError(
            f"M-Pesa result {ocid!r}: field 'Result.ConversationID' is {conversation_id!r:.80}, "
            "expected a string",
            shortcode="",
            originator_conversation_id=ocid,
        )
    result_type = result.get("ResultType", 0)
    try:
        result_type = int(result_type)
    except (TypeError, ValueError):
        raise MpesaPayloadError(
            f"M-Pesa result {ocid!r}: field 'Result.ResultType' is {result_type!r:.80}, "
            "expected an integer",
            shortcode="",
            originator_conversation_id=ocid,
        ) from None
    transaction_id = result.get("TransactionID")
    return MpesaResult(
        result_type=result_type,
        result_code=_result_code(result.get("ResultCode"), ocid),
        result_desc=str(result.get("ResultDesc") or ""),
        originator_conversation_id=ocid,
        conversation_id=conversation_id,
        transaction_id=str(transaction_id) if transaction_id else None,
        parameters=_key_values(result.get("ResultParameters"), ocid, "Result.ResultParameters"),
        reference=_key_values(result.get("ReferenceData"), ocid, "Result.ReferenceData"),
    )
