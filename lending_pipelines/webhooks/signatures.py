"""Signature checks for the providers that sign their callbacks (Twilio, Stripe).

Every comparison is constant-time over bytes; a secret being rotated is checked like the
current one, and all candidates are always checked (no early exit that times which matched).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence

import stripe

STRIPE_SIGNATURE_TOLERANCE_SECONDS = 300


def twilio_expected_signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(auth token, full URL + each POST parameter's name and
    value, sorted by name)), as Twilio documents it."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_signature_valid(
    auth_token: str, url: str, params: Sequence[tuple[str, str]], signature: str
) -> bool:
    expected = twilio_expected_signature(auth_token, url, params).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def twilio_request_valid(
    auth_token: str, urls: Iterable[str], params: Sequence[tuple[str, str]], signature: str
) -> bool:
    """True when the signature matches the form for any URL the request may have been sent to."""
    matched = False
    for url in urls:
        matched |= twilio_signature_valid(auth_token, url, params, signature)
    return matched


def stripe_signature_header_usable(header: str) -> bool:
    """A Stripe-Signature header worth reading the body for: a timestamp and a v1 signature."""
    parts = [part.split("=", 1)[0].strip() for part in header.split(",")]
    return "t" in parts and "v1" in parts


def stripe_payload_valid(payload: str, header: str, secrets: Sequence[str]) -> bool:
    """True when the header signs the payload with any of the endpoint secrets, in tolerance."""
    return any(_stripe_signed_with(payload, header, secret) for secret in secrets)


def _stripe_signed_with(payload: str, header: str, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(
            payload, header, secret, STRIPE_SIGNATURE_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError:
        return False
    return True


def token_matches(presented: str, tokens: Sequence[bytes]) -> bool:
    """Constant-time match of a path token against every accepted token, as bytes (a non-ASCII
    path segment is just another wrong token)."""
    candidate = presented.encode("utf-8", "surrogateescape")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token)
    return matched
