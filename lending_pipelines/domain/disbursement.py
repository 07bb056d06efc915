"""Rules of an M-Pesa loan disbursement: identity of each attempt, what a result code means,
when the next attempt may start, and what amount M-Pesa can pay.

The state machine (stored in `disbursement_requests.status`):

    pending   --B2C accepted / duplicate-->  submitted  --result 0-->  succeeded
    pending   --timeout or 5xx after send--> unknown
    submitted, unknown --no result in time--> status query --> succeeded | failed |
                                              pending (not found: resend the same attempt)
    submitted --result != 0--> failed --retryable and due--> pending (a new attempt)
    pending   --invalid phone, rejected request--> failed

An attempt is identified by its OriginatorConversationID. A new id is only ever minted after the
previous attempt is *known* failed; every other path resends the same id, which Daraja refuses
as a duplicate if it already has it — so a payment can never be made twice.
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
