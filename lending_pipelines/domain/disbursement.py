"""Rules of an M-Pesa loan disbursement: identity of each attempt, what a result code means,
what a transaction-status answer proves, when the next attempt may start, and what amount
M-Pesa can pay.

The state machine (stored in `disbursement_requests.status`; each attempt also has its own row
in `disbursement_attempts`, so no attempt id is ever overwritten):

    pending   --claimed, attempt committed before the B2C call-->  unknown
    unknown   --B2C acknowledged (ConversationID)-->  submitted
    unknown   --B2C refused as invalid (nothing accepted)-->  failed
    submitted, unknown --a callback (a hint) or no answer in time--> status query -->
        found, matching ids, amount and receiver:  succeeded | failed
        found but not matching:                    alert + needs_review, nothing changes
        not found, seen twice some time apart:     pending (resend of the *same* attempt)
        the query itself failed (e.g. 2001):       nothing changes, asked again later
    failed (confirmed, retryable, backoff passed) --> pending (a new attempt, a new id)

A callback is never proof: anyone holding the callback URL can post one. Only the answer to a
status query we sent, matched by the ids of that query's acknowledgement, settles a request.
A new OriginatorConversationID is minted only after a confirmed failure; the same one is sent
again only after M-Pesa twice said it does not know it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from .backoff import backoff_delay

STATUSES = ("pending", "submitted", "succeeded", "failed", "unknown")
OPEN_STATUSES = ("pending", "submitted", "unknown")

# B2C result codes (API_CONTRACTS.md §2.5) after which the same payment may be tried again with
# a new attempt: the money did not move and the cause is transient on Safaricom's side or a
# balance that the partner can top up.
RETRYABLE_RESULT_CODES = frozenset(
    {
        "1",  # insufficient balance in the utility account (partner tops up)
        "4",  # customer's daily transfer limit reached (try tomorrow)
        "17",  # internal failure
        "26",  # traffic blocking condition (system too busy)
        "100000001",  # system overload
        "100000002",  # throttling
        "100000011",  # request rate exceeded
    }
)
RESULT_REASONS = {
    "1": "insufficient balance in the B2C utility account",
    "2": "amount below the M-Pesa minimum",
    "3": "amount above the M-Pesa maximum",
    "4": "customer's daily transfer limit reached",
    "8": "customer's maximum balance would be exceeded",
    "11": "the B2C account is in an invalid state",
    "15": "duplicate request detected by M-Pesa",
    "17": "M-Pesa internal failure",
    "21": "the initiator lacks the B2C API role",
    "26": "M-Pesa traffic blocking (system busy)",
    "2001": "initiator information invalid (check initiator name / security credential)",
    "2006": "account status does not allow the transaction",
    "2028": "shortcode not permitted for B2C",
    "2040": "customer is not registered for M-Pesa",
    "8006": "security credential locked",
    "SFC_IC0003": "phone number does not exist on M-Pesa",
}
# Transaction-status result codes that mean "M-Pesa has no such transaction". Daraja does not
# document one (API_CONTRACTS.md §2.6); the local sandbox answers R000002. Any other non-zero
# code is a failed *query* (e.g. 2001 / 21: initiator or role problem), which proves nothing.
NOT_FOUND_RESULT_CODES = frozenset({"R000002"})
B2C_MIN_KES = 10
B2C_MAX_KES = 250_000


class DisbursementRuleError(ValueError):
    """A disbursement M-Pesa cannot make as requested (final: retrying cannot help)."""


@dataclass(frozen=True)
class Classification:
    retryable: bool
    reason: str


def originator_conversation_id(partner_id: str, loan_id: int, tranche: int, attempt: int) -> str:
    """Deterministic per attempt, so that resending after a crash reuses the same id."""
    if attempt < 1 or tranche < 1:
        raise ValueError(f"attempt {attempt} and tranche {tranche} must be >= 1")
    return f"{partner_id}-L{loan_id}-T{tranche}-A{attempt}"


def classify_result(code: str, description: str = "") -> Classification:
    """What a failed B2C result code means for the next attempt. Unknown codes are final: a
    person looks at them before money is sent again."""
    code = str(code).strip()
    reason = RESULT_REASONS.get(code) or description or "unrecognised M-Pesa result"
    return Classification(retryable=code in RETRYABLE_RESULT_CODES, reason=f"{code}: {reason}")


def status_query_outcome(transaction_status: str | None) -> str:
    """Map a found transaction's `TransactionStatus` to succeeded / failed / in_flight."""
    value = (transaction_status or "").strip().lower()
    if value == "completed":
        return "succeeded"
    if value in {"failed", "cancelled", "declined", "expired", "reversed"}:
        return "failed"
    return "in_flight"


@dataclass(frozen=True)
class StatusAnswer:
    """A transaction-status result, reduced to what the verdict needs (plain values)."""

    result_code: str
    transaction_status: str | None = None
    originator_conversation_id: str | None = None
    conversation_id: str | None = None
    amount: Decimal | None = None
    receiver: str | None = None
    receipt: str | None = None
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True)
class Verdict:
    """succeeded | failed | not_found | in_flight | query_failed | mismatch."""

    kind: str
    reason: str = ""
    retryable: bool = False
    receipt: str | None = None
    result_code: str | None = None


def judge_status_answer(
    answer: StatusAnswer,
    *,
    originator_conversation_id: str,
    conversation_id: str | None,
    amount_kes: int,
    phone: str | None,
) -> Verdict:
    """What an authentic answer to our status query proves about our attempt. A found
    transaction must carry our OriginatorConversationID, the ConversationID of our B2C
    acknowledgement (when we got one), our amount and our borrower's phone; anything else is a
    mismatch for a person, never an update."""
    code = answer.result_code
    if code in NOT_FOUND_RESULT_CODES:
        return Verdict(
            "not_found", f"{code}: M-Pesa has no transaction {originator_conversation_id}"
        )
    if code != "0" or answer.transaction_status is None:
        return Verdict("query_failed", f"status query answered {code}: {answer.reason_text or ''}")
    problems = []
    if answer.originator_conversation_id != originator_conversation_id:
        problems.append(
            f"OriginatorConversationID is {answer.originator_conversation_id!r}, "
            f"expected {originator_conversation_id!r}"
        )
    if conversation_id is not None and answer.conversation_id != conversation_id:
        problems.append(
            f"ConversationID is {answer.conversation_id!r}, expected {conversation_id!r}"
        )
    if answer.amount is None or answer.amount != Decimal(amount_kes):
        problems.append(f"Amount is {answer.amount!r}, expected KES {amount_kes}")
    receiver = (answer.receiver or "").strip()
    if not phone or not receiver.startswith(phone):
        problems.append(f"receiver is {receiver[:40]!r}, expected {phone!r}")
    if problems:
        return Verdict("mismatch", "; ".join(problems))
    outcome = status_query_outcome(answer.transaction_status)
    if outcome == "succeeded":
        if not answer.receipt:
            return Verdict("mismatch", "completed transaction without a receipt number")
        return Verdict("succeeded", receipt=answer.receipt, result_code="0")
    if outcome == "failed":
        verdict = classify_result(
            answer.reason_code or "status_query", answer.reason_text or answer.transaction_status
        )
        return Verdict(
            "failed", verdict.reason, retryable=verdict.retryable, result_code=answer.reason_code
        )
    return Verdict("in_flight", f"transaction is {answer.transaction_status!r}")


def next_attempt_at(
    now: datetime, attempts: int, *, base_seconds: float, cap_seconds: float, rand: float = 0.5
) -> datetime:
    """When attempt `attempts + 1` may start: exponential backoff with +/-25 % jitter."""
    delay = backoff_delay(
        max(attempts, 1), base=base_seconds, cap=cap_seconds, jitter=0.25, rand=rand
    )
    return now + timedelta(seconds=delay)


def b2c_amount(amount_minor: int, currency: str) -> int:
    """The whole-shilling amount to send: M-Pesa pays whole KES between 10 and 250,000."""
    if currency != "KES":
        raise DisbursementRuleError(f"currency {currency!r}: M-Pesa B2C pays KES only")
    if amount_minor % 100:
        raise DisbursementRuleError(
            f"amount KES {Decimal(amount_minor) / 100} is not a whole number of shillings"
        )
    whole = amount_minor // 100
    if not B2C_MIN_KES <= whole <= B2C_MAX_KES:
        raise DisbursementRuleError(
            f"amount KES {whole} is outside the M-Pesa B2C range {B2C_MIN_KES}..{B2C_MAX_KES}"
        )
    return whole


def success_rate(succeeded: int, failed: int) -> Decimal | None:
    """Share of finished disbursements that succeeded; None when none finished."""
    finished = succeeded + failed
    return None if finished == 0 else Decimal(succeeded) / Decimal(finished)
