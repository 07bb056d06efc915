"""Safaricom M-Pesa Daraja: OAuth, B2C v3 payments, transaction-status queries, result callbacks.

`MpesaClient` is a plain client for one shortcode (partners each have their own Daraja app);
`MpesaResource.client_for(...)` builds one per partner with the resource's callback URLs,
timeouts and retry settings.

What matters for money (API_CONTRACTS.md §2): a B2C request is only *accepted* synchronously;
the result arrives later on the ResultURL. The only idempotency mechanism is the caller's unique
OriginatorConversationID: reusing it gives HTTP 500 `500.002.1001`, which this client raises as
`MpesaDuplicateRequestError` ("already sent"). A B2C call that may have reached Safaricom but got
no answer (read timeout, 5xx) raises `MpesaOutcomeUnknownError` and is never retried here: the
caller records it as unknown and reconciles with a status query. Spike arrest / quota violations
(HTTP 500 `500.003.02` / `500.003.03`) and connection failures before sending are retried.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx
import pydantic

from lending_pipelines.domain.backoff import backoff_delay

from ..payloads import first_problem
from .errors import (
    MpesaAuthError,
    MpesaDuplicateRequestError,
    MpesaError,
    MpesaFinalError,
    MpesaOutcomeUnknownError,
    MpesaPayloadError,
    MpesaRetryableError,
)
from .models import Acknowledgement, TokenPayload, describe, parse_result_callback
from .tokens import TOKEN_CACHE, TokenCache

log = logging.getLogger(__name__)

SANDBOX_BASE_URL = "https://sandbox.safaricom.co.ke"
PRODUCTION_BASE_URL = "https://api.safaricom.co.ke"
OAUTH_PATH = "/oauth/v1/generate"
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
STATUS_PATH = "/mpesa/transactionstatus/v1/query"

DUPLICATE_ORIGINATOR = "500.002.1001"
SPIKE_ARREST = "500.003.02"
QUOTA_VIOLATION = "500.003.03"
RETRYABLE_GATEWAY_CODES = frozenset({SPIKE_ARREST, QUOTA_VIOLATION})
# The docs disagree on the invalid/expired token code; any of these (or the message) refreshes.
INVALID_TOKEN_CODES = frozenset({"404.001.03", "401.002.01", "400.003.01"})
COMMAND_IDS = frozenset({"BusinessPayment", "SalaryPayment", "PromotionPayment"})
MSISDN = re.compile(r"^254[17]\d{8}$")


# --- the client --------------------------------------------------------------------------


@dataclass(frozen=True)
class MpesaConfig:
    base_url: str
    consumer_key: str
    consumer_secret: str = field(repr=False)
    shortcode: str = ""
    initiator_name: str = ""
    security_credential: str = field(default="", repr=False)
    # The callback URLs carry the receiver's secret path token.
    result_url: str = field(default="", repr=False)
    timeout_url: str = field(default="", repr=False)
    command_id: str = "BusinessPayment"
    timeout_seconds: float = 15.0
    max_attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    token_refresh_margin_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.command_id not in COMMAND_IDS:
            raise ValueError(
                f"M-Pesa shortcode {self.shortcode!r}: command_id {self.command_id!r} is not one "
                f"of {sorted(COMMAND_IDS)}"
            )
        if self.max_attempts < 1:
            raise ValueError(f"M-Pesa shortcode {self.shortcode!r}: max_attempts must be >= 1")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"M-Pesa shortcode {self.shortcode!r}: base_url {self.base_url!r} is not an "
                "http(s) URL"
            )


class MpesaClient:
    """Daraja client for one app + shortcode."""

    def __init__(
        self,
        config: MpesaConfig,
        *,
        token_cache: TokenCache = TOKEN_CACHE,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._tokens = token_cache
        self._rng = rng or random.Random()
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        return (
            f"MpesaClient(shortcode={self.config.shortcode!r}, base_url={self.config.base_url!r})"
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> MpesaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.config.timeout_seconds)
        return self._http

    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    def _error(self, cls: type[MpesaError], what: str, reason: str, **extra: Any) -> MpesaError:
        return cls(
            f"M-Pesa shortcode {self.config.shortcode!r} {what}: {reason}",
            shortcode=self.config.shortcode,
            **extra,
        )

    def _sleep_before_retry(self, what: str, attempt: int, error: MpesaError) -> None:
        delay = backoff_delay(
            attempt,
            base=self.config.backoff_base_seconds,
            cap=self.config.backoff_max_seconds,
            jitter=0.25,
            rand=self._rng.random(),
        )
        log.warning(
            "M-Pesa shortcode %r %s attempt %d/%d failed (%s); retrying in %.2fs",
            self.config.shortcode, what, attempt, self.config.max_attempts, error, delay,
        )  # fmt: skip
        time.sleep(delay)

    # --- OAuth ---------------------------------------------------------------------------

    @property
    def _token_key(self) -> tuple[str, str]:
        return (self.config.base_url.rstrip("/"), self.config.consumer_key)

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A cached Bearer token, minted again `token_refresh_margin_seconds` before expiry."""
        if not force_refresh:
            cached = self._tokens.get(self._token_key, time.monotonic())
            if cached:
                return cached
        what = "OAuth token"
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                response = self._client.get(
                    self._url(OAUTH_PATH),
                    params={"grant_type": "client_credentials"},
                    auth=httpx.BasicAuth(self.config.consumer_key, self.config.consumer_secret),
                )
            except httpx.TransportError as exc:
                error: MpesaError = self._error(
                    MpesaRetryableError, what, f"{type(exc).__name__} (no answer)"
                )
            else:
                if response.status_code == 200:
                    return self._store_token(response)
                error = self._gateway_error(what, response, idempotent=True)
                if isinstance(error, MpesaFinalError):
                    code = f" {error.error_code}" if error.error_code else ""
                    raise self._error(
                        MpesaAuthError,
                        what,
                        f"HTTP {response.status_code}{code} (check the partner's consumer key "
                        "and secret)",
                        status_code=response.status_code,
                        error_code=error.error_code,
                    )
            if attempt == self.config.max_attempts:
                raise error
            self._sleep_before_retry(what, attempt, error)
        raise AssertionError("unreachable: the loop returns or raises")

    def _store_token(self, response: httpx.Response) -> str:
        what = "OAuth token"
        try:
            body = response.json()
        except ValueError:
            raise self._error(
                MpesaRetryableError, what, "HTTP 200 with a body that is not valid JSON"
            ) from None
        try:
            answer = TokenPayload.model_validate(body)
        except pydantic.ValidationError as exc:
            problem = first_problem(TokenPayload, exc)
            if problem.field != "expires_in":
                # Never echo the body or the field: it may hold a token.
                raise self._error(
                    MpesaPayloadError, what, "field 'access_token' is missing or empty"
                ) from None
            raise self._error(MpesaPayloadError, what, describe(problem)) from None
        lifetime = max(0.0, answer.expires_in - self.config.token_refresh_margin_seconds)
        self._tokens.put(self._token_key, answer.access_token, time.monotonic() + lifetime)
        return answer.access_token

    # --- API calls -----------------------------------------------------------------------

    def _gateway_error(
        self, what: str, response: httpx.Response, *, idempotent: bool
    ) -> MpesaError:
        status = response.status_code
        code = message = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("errorCode") or body.get("ResponseCode")
            message = body.get("errorMessage") or body.get("ResponseDescription")
        code = str(code) if code is not None else None
        reason = (
            f"HTTP {status}"
            + (f" {code}" if code else "")
            + (f": {str(message)[:200]}" if message else "")
        )
        if code == DUPLICATE_ORIGINATOR:
            cls: type[MpesaError] = MpesaDuplicateRequestError
        elif code in RETRYABLE_GATEWAY_CODES or status == 429:
            cls = MpesaRetryableError
        elif status >= 500:
            cls = MpesaRetryableError if idempotent else MpesaOutcomeUnknownError
        else:
            cls = MpesaFinalError
        return self._error(cls, what, reason, status_code=status, error_code=code)

    @staticmethod
    def _is_invalid_token(error: MpesaError) -> bool:
        return (
            error.error_code in INVALID_TOKEN_CODES or "invalid access token" in str(error).lower()
        )

    def _post(self, path: str, body: dict[str, Any], *, what: str, idempotent: bool) -> Any:
        """POST with a Bearer token. Non-idempotent calls (B2C) are retried only when the request
        certainly was not processed (connect errors, spike arrest, quota, 429, stale token)."""
        refreshed = False
        ocid = body.get("OriginatorConversationID")
        attempt = 0
        while True:
            attempt += 1
            token = self.access_token()
            try:
                response = self._client.post(
                    self._url(path), json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error: MpesaError = self._error(
                    MpesaRetryableError, what, f"{type(exc).__name__} (not sent)",
                    originator_conversation_id=ocid,
                )  # fmt: skip
            except httpx.TransportError as exc:
                cls = MpesaRetryableError if idempotent else MpesaOutcomeUnknownError
                error = self._error(
                    cls, what, f"{type(exc).__name__} after sending; outcome unknown",
                    originator_conversation_id=ocid,
                )  # fmt: skip
            else:
                if response.status_code == 200:
                    return self._acknowledgement(what, response, ocid)
                error = self._gateway_error(what, response, idempotent=idempotent)
                error.originator_conversation_id = ocid
                if self._is_invalid_token(error) and not refreshed:
                    self._tokens.drop(self._token_key, token)
                    refreshed = True
                    attempt -= 1
                    continue
            if not error.retryable or attempt >= self.config.max_attempts:
                raise error
            self._sleep_before_retry(what, attempt, error)

    def _acknowledgement(self, what: str, response: httpx.Response, ocid: str | None) -> Any:
        try:
            body = response.json()
        except ValueError:
            cls = MpesaOutcomeUnknownError if ocid else MpesaRetryableError
            raise self._error(
                cls, what, "HTTP 200 with a body that is not valid JSON",
                originator_conversation_id=ocid,
            ) from None  # fmt: skip
        try:
            ack = Acknowledgement.model_validate(body)
        except pydantic.ValidationError as exc:
            # For a B2C request an incomplete 200 may still be an acceptance: unknown.
            raise self._error(
                MpesaOutcomeUnknownError if ocid else MpesaPayloadError, what,
                f"acknowledgement {describe(first_problem(Acknowledgement, exc))}",
                originator_conversation_id=ocid,
            ) from None  # fmt: skip
        if ack.response_code != "0":
            raise self._error(
                MpesaFinalError, what,
                f"not accepted: ResponseCode {ack.response_code} {ack.response_description}",
                error_code=ack.response_code, originator_conversation_id=ocid,
            )  # fmt: skip
        return ack

    def b2c_payment(
        self,
        *,
        originator_conversation_id: str,
        phone: str,
        amount: int | Decimal,
        remarks: str = "Loan disbursement",
        occasion: str | None = None,
    ) -> Acknowledgement:
        """Submit one B2C payment. `originator_conversation_id` must be unique per payment and
        deterministic per attempt, so that a resend can be detected as a duplicate."""
        what = f"B2C {originator_conversation_id}"
        if not originator_conversation_id:
            raise ValueError("originator_conversation_id is required")
        if not MSISDN.match(phone):
            raise ValueError(
                f"M-Pesa {what}: phone {phone!r} is not a 12-digit 2547XXXXXXXX/2541XXXXXXXX MSISDN"
            )
        whole = Decimal(amount)
        if whole != whole.to_integral_value() or whole <= 0:
            raise ValueError(f"M-Pesa {what}: amount {amount!r} must be a positive whole number")
        body: dict[str, Any] = {
            "OriginatorConversationID": originator_conversation_id,
            "InitiatorName": self.config.initiator_name,
            "SecurityCredential": self.config.security_credential,
            "CommandID": self.config.command_id,
            "Amount": int(whole),
            "PartyA": self.config.shortcode,
            "PartyB": phone,
            "Remarks": (remarks or "Loan disbursement")[:100].ljust(2, "."),
            "QueueTimeOutURL": self.config.timeout_url,
            "ResultURL": self.config.result_url,
        }
        if occasion:
            body["Occasion"] = occasion[:100]
        return self._post(B2C_PATH, body, what=what, idempotent=False)

    def transaction_status(
        self,
        *,
        originator_conversation_id: str | None = None,
        transaction_id: str | None = None,
        remarks: str = "Disbursement reconciliation",
    ) -> Acknowledgement:
        """Ask for a payment's status by our OriginatorConversationID or the M-Pesa receipt.
        The answer arrives on the ResultURL; the queried id is echoed as the Occasion so the
        result can be matched even if the gateway omits it from the parameters."""
        if not originator_conversation_id and not transaction_id:
            raise ValueError(
                "transaction_status needs originator_conversation_id or transaction_id"
            )
        queried = originator_conversation_id or transaction_id
        body: dict[str, Any] = {
            "Initiator": self.config.initiator_name,
            "SecurityCredential": self.config.security_credential,
            "CommandID": "TransactionStatusQuery",
            "PartyA": self.config.shortcode,
            "IdentifierType": "4",
            "ResultURL": self.config.result_url,
            "QueueTimeOutURL": self.config.timeout_url,
            "Remarks": remarks[:100],
            "Occasion": queried,
        }
        if transaction_id:
            body["TransactionID"] = transaction_id
        else:
            body["OriginalConversationID"] = originator_conversation_id
        return self._post(STATUS_PATH, body, what=f"status query {queried}", idempotent=True)

    parse_result = staticmethod(parse_result_callback)


class MpesaClients(Protocol):
    """What builds one partner's Daraja client: `resources.mpesa.MpesaResource` in Dagster, any
    object with the same `client_for` and `callback_urls` elsewhere."""

    def callback_urls(self) -> tuple[str, str]: ...

    def client_for(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        shortcode: str,
        initiator_name: str,
        security_credential: str,
        base_url: str | None = None,
    ) -> MpesaClient: ...
