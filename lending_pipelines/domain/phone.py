"""Kenyan mobile numbers as M-Pesa B2C wants them: 12 digits, `2547XXXXXXXX` or `2541XXXXXXXX`.

Partners type phone numbers into Fineract in every local form (`0712 345 678`, `+254-712-345678`,
`712345678`); anything that does not reduce to one of the two M-Pesa forms is refused with an
error that quotes the value masked (`0812 *** 678`), so the disbursement is recorded as failed
rather than sent and the number itself never reaches failure reasons, logs or analytics.
"""

from __future__ import annotations

import re

SEPARATORS = re.compile(r"[\s\-().]")
MSISDN = re.compile(r"^254[17]\d{8}$")
ACCEPTED_FORMS = "2547XXXXXXXX, 2541XXXXXXXX, 07XXXXXXXX, 01XXXXXXXX, +2547XXXXXXXX or 7XXXXXXXX"


def mask_phone(raw: object) -> str:
    """A phone number as it may be shown: `0812 345 678` → `0812 *** 678`.

    Enough of it to recognise a typo, not enough to call the person.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return repr(raw)
    text = str(raw).strip()
    if len(text) < 9:
        return f"{text[:2]} ***"
    return f"{text[:4].rstrip()} *** {text[-3:].lstrip()}"


class InvalidPhoneError(ValueError):
    """A phone number that cannot receive an M-Pesa B2C payment (the message masks it)."""

    def __init__(self, raw: object, reason: str) -> None:
        super().__init__(f"phone {mask_phone(raw)} {reason} (accepted: {ACCEPTED_FORMS})")
        self.raw = raw


def normalise_msisdn(raw: object) -> str:
    """`0712 345 678` → `254712345678`; raises InvalidPhoneError naming the value otherwise."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidPhoneError(raw, "is missing")
    if not isinstance(raw, str):
        raise InvalidPhoneError(raw, "is not text")
    digits = SEPARATORS.sub("", raw.strip())
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit():
        raise InvalidPhoneError(raw, "contains characters other than digits")
    if len(digits) == 10 and digits.startswith("0"):
        digits = "254" + digits[1:]
    elif len(digits) == 9:
        digits = "254" + digits
    if not digits.startswith("254"):
        raise InvalidPhoneError(raw, "is not a Kenyan number")
    if not MSISDN.match(digits):
        raise InvalidPhoneError(raw, "is not a Kenyan mobile number M-Pesa can pay")
    return digits
