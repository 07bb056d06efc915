"""Daraja payloads (API_CONTRACTS.md §2), one pydantic model each: the OAuth token, the
synchronous acknowledgement of a B2C or status query, the `{"Result": {...}}` callback (B2C
result or transaction-status result) and a status result's parameters. A payload that does not
validate is an `MpesaPayloadError` naming the field and value (never a token)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

import pydantic
from pydantic import Field

from ...domain.disbursement import StatusAnswer
from ..payloads import MISSING, Expect, FieldProblem, Payload, first_problem, refuse
from .errors import MpesaPayloadError

RESULT_CODE = re.compile(r"^[A-Za-z0-9_]+$")


def _code(value: Any) -> str:
    """A JSON integer or a digit string (ResponseCode is the string "0" on the wire)."""
    if type(value) is int:
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise refuse("a non-empty string or an integer")


def _result_code(value: Any) -> str:
    """An integer (or a digit string) or one of Daraja's alphanumeric codes (`SFC_IC0003`).
    Anything else — 0.5, "0.4", "", a list — is a malformed callback: truncating it could turn
    it into "0", a success."""
    if isinstance(value, bool) or value is None:
        raise refuse("an integer code")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        exact = Decimal(str(value))
        if exact.is_finite() and exact == exact.to_integral_value():
            return str(int(exact))
        raise refuse("an integer code")
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return str(int(text))
        if RESULT_CODE.match(text) and not text.replace("_", "").isdigit():
            return text
    raise refuse("an integer code")


def _result_type(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise refuse("an integer")


def _key_values(value: Any) -> dict[str, Any]:
    """`{"ResultParameter": [{"Key": k, "Value": v}, ...]}` — a list or a single object; an item
    without Value (e.g. `{"Key": "CreditPartyCharges"}`) maps to None; absent or "" is empty."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise refuse("an object")
    items = next(iter(value.values()), None) if value else None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise refuse("Key/Value items")
    values: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            raise refuse(f"Key/Value items (item {item!r:.60} has no Key)")
        values[item["Key"]] = item.get("Value")
    return values


def _text(value: Any) -> str | None:
    """A free-text parameter: a string, or a number written as one; empty reads as None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal | float) and not isinstance(value, bool):
        return str(value)
    raise refuse("a string")


def _amount_or_none(value: Any) -> Decimal | None:
    """A status answer's Amount. Unreadable reads as no amount, which never matches ours: the
    verdict then holds the request for a person instead of dropping the answer."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() else None


Code = Annotated[str, pydantic.PlainValidator(_code), Expect("a non-empty string or an integer")]
NonEmpty = Annotated[
    str, pydantic.StringConstraints(strict=True, min_length=1), Expect("a non-empty string")
]
KeyValues = Annotated[dict[str, Any], pydantic.PlainValidator(_key_values)]
Text = Annotated[str | None, pydantic.PlainValidator(_text)]


class TokenPayload(Payload):
    """`GET /oauth/v1/generate`: `expires_in` is a string ("3599") in practice, or an int."""

    access_token: NonEmpty
    expires_in: Annotated[
        int, pydantic.PlainValidator(_result_type), Expect("seconds (int or string)")
    ]


class Acknowledgement(Payload):
    """The synchronous answer to B2C / status query: accepted for processing, not a result."""

    conversation_id: Code = Field(alias="ConversationID")
    originator_conversation_id: Code = Field(alias="OriginatorConversationID")
    response_code: Code = Field(alias="ResponseCode")
    response_description: Annotated[str, pydantic.PlainValidator(lambda v: _text(v) or "")] = Field(
        "", alias="ResponseDescription"
    )


class StatusParameters(Payload):
    """The ResultParameters of a transaction-status result that the verdict reads."""

    originator_conversation_id: Text = Field(None, alias="OriginatorConversationID")
    conversation_id: Text = Field(None, alias="ConversationID")
    transaction_status: Text = Field(None, alias="TransactionStatus")
    receipt: Text = Field(None, alias="ReceiptNo")
    amount: Annotated[Decimal | None, pydantic.PlainValidator(_amount_or_none)] = Field(
        None, alias="Amount"
    )
    receiver: Text = Field(None, alias="CreditPartyName")
    reason_code: Text = Field(None, alias="TransactionReason")
    reason_type: Text = Field(None, alias="ReasonType")


class MpesaResult(Payload):
    """The `Result` of a ResultURL callback (B2C result or transaction-status result).
    ResultCode/ResultType may be ints or strings; failed results carry no ResultParameters;
    ResultParameter may be a list or one object."""

    originator_conversation_id: NonEmpty = Field(alias="OriginatorConversationID")
    conversation_id: pydantic.StrictStr = Field(alias="ConversationID")
    result_type: Annotated[int, pydantic.PlainValidator(_result_type)] = Field(
        0, alias="ResultType"
    )
    result_code: Annotated[
        str, pydantic.PlainValidator(_result_code), Expect("an integer code")
    ] = Field(alias="ResultCode")
    result_desc: Annotated[str, pydantic.BeforeValidator(lambda v: "" if v is None else v)] = Field(
        "", alias="ResultDesc"
    )
    transaction_id: Text = Field(None, alias="TransactionID")
    parameters: KeyValues = Field(default_factory=dict, alias="ResultParameters")
    reference: KeyValues = Field(default_factory=dict, alias="ReferenceData")

    @property
    def succeeded(self) -> bool:
        return self.result_code == "0"

    @property
    def is_status_query(self) -> bool:
        """A found transaction's status. (A query that found nothing looks like a failed B2C
        result; only the ids it carries tell them apart.)"""
        return "TransactionStatus" in self.parameters

    @property
    def status(self) -> StatusParameters:
        """The parameters as a status-query result (all None for a B2C result)."""
        return StatusParameters.model_validate(self.parameters)

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
            amount = _amount_or_none(self.parameters.get(key))
            if amount is not None:
                return amount
        return None

    @property
    def queried_originator_conversation_id(self) -> str | None:
        """For a status-query result: the B2C request it describes (the query's own ids differ).
        Taken from the result parameters, else from the Occasion we sent with the query."""
        value = self.status.originator_conversation_id or self.reference.get("Occasion")
        return str(value) if value else None

    @property
    def queried_conversation_id(self) -> str | None:
        """For a status-query result: the ConversationID of the B2C payment it describes."""
        return self.status.conversation_id

    @property
    def transaction_status(self) -> str | None:
        return self.status.transaction_status

    def status_answer(self) -> StatusAnswer:
        """This result as the plain answer `domain.disbursement.judge_status_answer` judges."""
        status = self.status
        return StatusAnswer(
            result_code=self.result_code,
            transaction_status=status.transaction_status,
            originator_conversation_id=status.originator_conversation_id,
            conversation_id=status.conversation_id,
            amount=status.amount,
            receiver=status.receiver,
            receipt=status.receipt,
            reason_code=status.reason_code.strip() if status.reason_code else None,
            reason_text=status.reason_type or self.result_desc or "",
        )


class ResultCallback(Payload):
    """A ResultURL body: `{"Result": {...}}`."""

    result: MpesaResult = Field(alias="Result")


def describe(problem: FieldProblem) -> str:
    """`field 'X' is <value>, expected <what>` (the value cut at 80 characters)."""
    value = "missing" if problem.value is MISSING else f"{problem.value!r:.80}"
    return f"field {problem.field!r} is {value}, expected {problem.expected}"


def parse_result_callback(payload: object) -> MpesaResult:
    """Parse a ResultURL body, or MpesaPayloadError naming the field and value (the result is
    named by its OriginatorConversationID when that is readable)."""
    try:
        return ResultCallback.model_validate(payload).result
    except pydantic.ValidationError as exc:
        problem = first_problem(ResultCallback, exc)
    result = payload.get("Result") if isinstance(payload, dict) else None
    ocid = result.get("OriginatorConversationID") if isinstance(result, dict) else None
    ocid = ocid if isinstance(ocid, str) and ocid else None
    subject = f"M-Pesa result {ocid!r}" if ocid else "M-Pesa callback"
    raise MpesaPayloadError(
        f"{subject}: {describe(problem)}",
        shortcode="",
        originator_conversation_id=ocid,
    )
