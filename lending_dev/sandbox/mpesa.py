"""Safaricom Daraja emulation: OAuth, B2C v3 (and v1), transaction status, async result callbacks.

Mounted under `/mpesa`; real paths below it (`/oauth/v1/generate`,
`/mpesa/b2c/v3/paymentrequest`, `/mpesa/transactionstatus/v1/query`). Faithful to
API_CONTRACTS.md §2.9: Basic-auth OAuth answering `expires_in` as a string, Bearer checks with
`404.001.03` for an invalid/expired token, `400.002.02` validation errors, HTTP 500
`500.002.1001` for a reused OriginatorConversationID, a synchronous ack (`ResponseCode: "0"`) and
then the Result POSTed to the request's ResultURL after a delay. A wrong initiator or security
credential is not a synchronous error (as on the real gateway) but a `2001` result.

Options (constructor, or `POST /_admin/mpesa/configure` with any of the same keys):
    apps: list of {consumer_key, consumer_secret, shortcode, initiator_name,
          security_credential}; default `DEFAULT_APPS`
    seed: int (42)                 outcomes, receipts and tokens derive from it
    callback_delay_ms: int (200)   delay before the Result is POSTed
    drop_callback_rate: 0..1 (0)   B2C results never delivered (the payment still happened)
    failure_rate: 0..1 (0)         B2C payments failing with one of `failure_codes`
    failure_codes: list ([17])     result codes drawn for failures (1, 2001, 2040, 17, 26 ...)
    phone_results: {msisdn: code}  a fixed result code for a phone (e.g. 2040 not registered)
    callbacks: "deliver" | "never" ("never call back" mode)
    token_ttl_seconds: int (3599)
    invalidate_previous_token: bool (False) — each new token revokes the app's previous one
    status_query_result_code: code (None)  every status query fails with this code (e.g. 2001,
                                   21) and no ResultParameters, as a query without the role does
    ack_omit_fields: list ([])     B2C acknowledgement fields left out (the payment is still made)
Outcomes are drawn from a generator seeded with (seed, OriginatorConversationID), so they do not
depend on request order. `snapshot()` lists every payment with its OCID, phone, amount, outcome
and callback fate, plus successful-payment counts per phone and per Occasion.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..demo import DEFAULT_APPS
from .core import ProviderSandbox, SandboxConfigError

log = logging.getLogger(__name__)

MSISDN = re.compile(r"^254[17]\d{8}$")
RECEIPT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
COMMAND_IDS = frozenset({"BusinessPayment", "SalaryPayment", "PromotionPayment"})
RESULT_DESCRIPTIONS = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    2: "Declined due to limit rule: less than the minimum transaction amount.",
    4: "Declined due to limit rule: would exceed daily transfer limit.",
    15: "Duplicate detected.",
    17: "Internal failure.",
    26: "Traffic blocking condition in place.",
    2001: "The initiator information is invalid.",
    2028: "The request is not permitted according to product assignment.",
    2040: "Credit Party customer type (Unregistered or Registered Customer) can't be supported "
    "by the service.",
}
# Not documented by Daraja (API_CONTRACTS.md leaves it open): what a status query for an
# OriginatorConversationID M-Pesa never received answers. This sandbox uses a non-zero code
# without ResultParameters, so clients must treat any failed query as "not found / unknown".
NOT_FOUND_CODE = "R000002"


@dataclass(frozen=True)
class MpesaOptions:
    apps: tuple[dict[str, str], ...] = tuple(DEFAULT_APPS)
    seed: int = 42
    callback_delay_ms: int = 200
    drop_callback_rate: float = 0.0
    failure_rate: float = 0.0
    failure_codes: tuple[int | str, ...] = (17,)
    phone_results: dict[str, int | str] = field(default_factory=dict)
    callbacks: str = "deliver"
    token_ttl_seconds: int = 3599
    invalidate_previous_token: bool = False
    status_query_result_code: int | str | None = None
    ack_omit_fields: tuple[str, ...] = ()

    @classmethod
    def build(cls, raw: dict[str, Any], base: MpesaOptions | None = None) -> MpesaOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise SandboxConfigError(f"mpesa: unknown option(s) {sorted(unknown)}")
        values = {f.name: getattr(base or cls(), f.name) for f in fields(cls)}
        values.update(raw)
        values["apps"] = tuple(values["apps"])
        values["failure_codes"] = tuple(values["failure_codes"])
        values["ack_omit_fields"] = tuple(values["ack_omit_fields"])
        options = cls(**values)
        for name in ("drop_callback_rate", "failure_rate"):
            rate = getattr(options, name)
            if not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise SandboxConfigError(f"mpesa: {name} is {rate!r}, expected 0..1")
        if options.callbacks not in ("deliver", "never"):
            raise SandboxConfigError(f"mpesa: callbacks is {options.callbacks!r}")
        if not options.failure_codes:
            raise SandboxConfigError("mpesa: failure_codes must not be empty")
        for app in options.apps:
            missing = {
                "consumer_key",
                "consumer_secret",
                "shortcode",
                "initiator_name",
                "security_credential",
            } - set(app)
            if missing:
                raise SandboxConfigError(f"mpesa app {app.get('shortcode')!r} lacks {missing}")
        return options


def _gateway_error(status: int, code: str, message: str, request_id: str) -> JSONResponse:
    return JSONResponse(
        {"requestId": request_id, "errorCode": code, "errorMessage": message},
        status_code=status,
    )


def _key_values(items: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Key": k, "Value": v} if v is not None else {"Key": k} for k, v in items.items()]


class MpesaSandbox(ProviderSandbox):
    name = "mpesa"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._initial = MpesaOptions.build(options)
        self._tasks: set[asyncio.Task] = set()
        self.reset()

    # --- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = set()
        self.opts = self._initial
        self._counter = 0
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (consumer key, expires at)
        self.payments: dict[str, dict[str, Any]] = {}  # by OriginatorConversationID
        self.status_queries: list[dict[str, Any]] = []
        self.duplicates_rejected = 0
        self.tokens_issued = 0

    def configure(self, body: dict) -> None:
        if not isinstance(body, dict) or not body:
            raise SandboxConfigError("mpesa configure body must be a non-empty object")
        self.opts = MpesaOptions.build(body, base=self.opts)

    def snapshot(self) -> dict:
        paid_by_phone: dict[str, int] = {}
        paid_by_occasion: dict[str, int] = {}
        for payment in self.payments.values():
            if payment["result_code"] == 0:
                paid_by_phone[payment["phone"]] = paid_by_phone.get(payment["phone"], 0) + 1
                if payment["occasion"]:
                    key = payment["occasion"]
                    paid_by_occasion[key] = paid_by_occasion.get(key, 0) + 1
        return {
            "payments": list(self.payments.values()),
            "paid_count_by_phone": paid_by_phone,
            "paid_count_by_occasion": paid_by_occasion,
            "status_queries": self.status_queries,
            "duplicates_rejected": self.duplicates_rejected,
            "tokens_issued": self.tokens_issued,
            "callbacks_pending": len(self._tasks),
        }

    async def shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _next_id(self) -> int:
        self._counter += 1
        return self._counter

    def _conversation_id(self) -> str:
        rng = random.Random(f"{self.opts.seed}:conversation:{self._next_id()}")
        return f"AG_{datetime.now():%Y%m%d}_{rng.getrandbits(80):020x}"

    def _request_id(self) -> str:
        rng = random.Random(f"{self.opts.seed}:request:{self._next_id()}")
        return f"{rng.randrange(10**4, 10**5)}-{rng.randrange(10**6, 10**7)}-1"

    # --- fault shapes --------------------------------------------------------------------

    def error_response(self) -> Response:
        return _gateway_error(500, "500.003.1001", "Internal Server Error", self._request_id())

    def rate_limited_response(self) -> Response:
        return _gateway_error(500, "500.003.02", "Spike Arrest Violation", self._request_id())

    # --- routes --------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/oauth/v1/generate", self.generate_token, methods=["GET"]),
            Route("/mpesa/b2c/v3/paymentrequest", self.b2c_v3, methods=["POST"]),
            Route("/mpesa/b2c/v1/paymentrequest", self.b2c_v1, methods=["POST"]),
            Route("/mpesa/transactionstatus/v1/query", self.transaction_status, methods=["POST"]),
        ]

    def _app_by_key(self, consumer_key: str) -> dict[str, str] | None:
        return next((a for a in self.opts.apps if a["consumer_key"] == consumer_key), None)

    async def generate_token(self, request: Request) -> Response:
        if request.query_params.get("grant_type") != "client_credentials":
            return _gateway_error(
                400, "400.008.02", "Invalid grant type passed", self._request_id()
            )
        header = request.headers.get("Authorization", "")
        app = None
        if header.lower().startswith("basic "):
            try:
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                key, secret = "", ""
            app = self._app_by_key(key)
            if app is not None and app["consumer_secret"] != secret:
                app = None
        if app is None:
            return _gateway_error(
                400, "400.008.01", "Invalid Authentication passed", self._request_id()
            )
        if self.opts.invalidate_previous_token:
            self.tokens = {t: v for t, v in self.tokens.items() if v[0] != app["consumer_key"]}
        rng = random.Random(f"{self.opts.seed}:token:{self._next_id()}")
        token = f"{rng.getrandbits(160):040x}"
        self.tokens[token] = (app["consumer_key"], time.monotonic() + self.opts.token_ttl_seconds)
        self.tokens_issued += 1
        return JSONResponse({"access_token": token, "expires_in": str(self.opts.token_ttl_seconds)})

    def _bearer_app(self, request: Request) -> dict[str, str] | Response:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        entry = self.tokens.get(token)
        if entry is None or entry[1] <= time.monotonic():
            return _gateway_error(404, "404.001.03", "Invalid Access Token", self._request_id())
        app = self._app_by_key(entry[0])
        if app is None:
            return _gateway_error(404, "404.001.03", "Invalid Access Token", self._request_id())
        return app

    async def _json_body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _gateway_error(
                400, "400.002.02", "Bad Request - Invalid Body", self._request_id()
            )
        return body

    def _invalid(self, field_name: str) -> JSONResponse:
        return _gateway_error(
            400, "400.002.02", f"Bad Request - Invalid {field_name}", self._request_id()
        )

    # --- B2C -----------------------------------------------------------------------------

    async def b2c_v3(self, request: Request) -> Response:
        return await self._b2c(request, version=3)

    async def b2c_v1(self, request: Request) -> Response:
        return await self._b2c(request, version=1)

    async def _b2c(self, request: Request, version: int) -> Response:
        app = self._bearer_app(request)
        if isinstance(app, Response):
            return app
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        problem = self._validate_b2c(body, version)
        if problem is not None:
            return problem
        ocid = str(body.get("OriginatorConversationID") or "")
        if version == 1:
            ocid = f"{self._request_id()}"
        if ocid in self.payments:
            self.duplicates_rejected += 1
            return _gateway_error(
                500, "500.002.1001", "Duplicate OriginatorConversationID.", self._request_id()
            )
        rng = random.Random(f"{self.opts.seed}:b2c:{ocid}")
        code = self._outcome(app, body, rng)
        phone = str(body["PartyB"])
        payment = {
            "originator_conversation_id": ocid,
            "conversation_id": self._conversation_id(),
            "shortcode": str(body["PartyA"]),
            "phone": phone,
            "amount": int(body["Amount"]),
            "occasion": body.get("Occasion") or body.get("Occassion"),
            "remarks": body.get("Remarks"),
            "result_code": code,
            "result_desc": RESULT_DESCRIPTIONS.get(code, "Request failed."),
            "transaction_id": "S" + "".join(rng.choice(RECEIPT_ALPHABET) for _ in range(9)),
            "status": "Completed" if code == 0 else "Failed",
            "completed_at": datetime.now().strftime("%d.%m.%Y %H:%M:%S"),
            "result_url": body["ResultURL"],
            "callback": "pending",
        }
        self.payments[ocid] = payment
        if self.opts.callbacks == "never":
            payment["callback"] = "never"
        elif rng.random() < self.opts.drop_callback_rate:
            payment["callback"] = "dropped"
        else:
            self._deliver(payment, body["ResultURL"], self._b2c_result(payment))
        ack = {
            "ConversationID": payment["conversation_id"],
            "OriginatorConversationID": ocid,
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        }
        return JSONResponse({k: v for k, v in ack.items() if k not in self.opts.ack_omit_fields})

    def _validate_b2c(self, body: dict[str, Any], version: int) -> Response | None:
        required = ["InitiatorName", "SecurityCredential", "CommandID", "Amount", "PartyA"]
        required += ["PartyB", "Remarks", "QueueTimeOutURL", "ResultURL"]
        if version == 3:
            required.insert(0, "OriginatorConversationID")
        for name in required:
            if body.get(name) in (None, ""):
                return self._invalid(name)
        if body["CommandID"] not in COMMAND_IDS:
            return self._invalid("CommandID")
        try:
            amount = float(body["Amount"])
        except (TypeError, ValueError):
            return self._invalid("Amount")
        if amount != int(amount) or not 10 <= amount <= 250_000:
            return self._invalid("Amount")
        if not MSISDN.match(str(body["PartyB"])):
            return self._invalid("PartyB")
        if not 2 <= len(str(body["Remarks"])) <= 100:
            return self._invalid("Remarks")
        for url in ("QueueTimeOutURL", "ResultURL"):
            if not str(body[url]).startswith(("http://", "https://")):
                return self._invalid(url)
        return None

    def _outcome(self, app: dict[str, str], body: dict[str, Any], rng: random.Random) -> int | str:
        if (
            body["InitiatorName"] != app["initiator_name"]
            or body["SecurityCredential"] != app["security_credential"]
        ):
            return 2001
        if str(body["PartyA"]) != app["shortcode"]:
            return 2028
        fixed = self.opts.phone_results.get(str(body["PartyB"]))
        if fixed is not None:
            return int(fixed) if str(fixed).isdigit() else fixed
        if rng.random() < self.opts.failure_rate:
            return rng.choice(self.opts.failure_codes)
        return 0

    def _b2c_result(self, payment: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ResultType": 0,
            "ResultCode": payment["result_code"],
            "ResultDesc": payment["result_desc"],
            "OriginatorConversationID": payment["originator_conversation_id"],
            "ConversationID": payment["conversation_id"],
            "TransactionID": payment["transaction_id"],
            "ReferenceData": {
                "ReferenceItem": {
                    "Key": "QueueTimeoutURL",
                    "Value": "https://internalsandbox.safaricom.co.ke/mpesa/b2cresults/v1/submit",
                }
            },
        }
        if payment["result_code"] == 0:
            result["ResultParameters"] = {
                "ResultParameter": _key_values(
                    {
                        "TransactionAmount": payment["amount"],
                        "TransactionReceipt": payment["transaction_id"],
                        "ReceiverPartyPublicName": f"{payment['phone']} - SANDBOX CUSTOMER",
                        "TransactionCompletedDateTime": payment["completed_at"],
                        "B2CUtilityAccountAvailableFunds": 8959269.60,
                        "B2CWorkingAccountAvailableFunds": 1199371.00,
                        "B2CRecipientIsRegisteredCustomer": "Y",
                        "B2CChargesPaidAccountAvailableFunds": -1980.00,
                    }
                )
            }
        return {"Result": result}

    # --- transaction status --------------------------------------------------------------

    async def transaction_status(self, request: Request) -> Response:
        app = self._bearer_app(request)
        if isinstance(app, Response):
            return app
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        for name in ("Initiator", "SecurityCredential", "CommandID", "PartyA", "IdentifierType"):
            if body.get(name) in (None, ""):
                return self._invalid(name)
        for name in ("ResultURL", "QueueTimeOutURL", "Remarks"):
            if body.get(name) in (None, ""):
                return self._invalid(name)
        if body["CommandID"] != "TransactionStatusQuery":
            return self._invalid("CommandID")
        original = body.get("OriginalConversationID")
        receipt = body.get("TransactionID")
        if not original and not receipt:
            return self._invalid("TransactionID")
        query_ocid = self._request_id()
        query = {
            "originator_conversation_id": query_ocid,
            "conversation_id": self._conversation_id(),
            "queried": original or receipt,
            "occasion": body.get("Occasion"),
            "callback": "pending",
        }
        self.status_queries.append(query)
        payment = self._find_payment(str(app["shortcode"]), original, receipt)
        if self.opts.callbacks == "never":
            query["callback"] = "never"
        else:
            self._deliver(query, body["ResultURL"], self._status_result(query, payment))
        return JSONResponse(
            {
                "ConversationID": query["conversation_id"],
                "OriginatorConversationID": query_ocid,
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            }
        )

    def _find_payment(
        self, shortcode: str, original: str | None, receipt: str | None
    ) -> dict[str, Any] | None:
        if original:
            payment = self.payments.get(str(original))
        else:
            payment = next(
                (p for p in self.payments.values() if p["transaction_id"] == receipt), None
            )
        return payment if payment is not None and payment["shortcode"] == shortcode else None

    def _status_result(
        self, query: dict[str, Any], payment: dict[str, Any] | None
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ResultType": 0,
            "OriginatorConversationID": query["originator_conversation_id"],
            "ConversationID": query["conversation_id"],
            "ReferenceData": {"ReferenceItem": {"Key": "Occasion", "Value": query["occasion"]}},
        }
        if self.opts.status_query_result_code is not None:
            code = self.opts.status_query_result_code
            result.update(
                ResultCode=int(code) if str(code).isdigit() else code,
                ResultDesc=RESULT_DESCRIPTIONS.get(int(code) if str(code).isdigit() else -1)
                or "The initiator is not allowed to initiate this request.",
            )
            return {"Result": result}
        if payment is None:
            result.update(
                ResultCode=NOT_FOUND_CODE,
                ResultDesc="The transaction could not be found.",
                TransactionID=None,
            )
            return {"Result": {k: v for k, v in result.items() if v is not None}}
        completed = payment["result_code"] == 0
        result.update(
            ResultCode=0,
            ResultDesc="The service request has been accepted successfully.",
            TransactionID=payment["transaction_id"],
            ResultParameters={
                "ResultParameter": _key_values(
                    {
                        "DebitPartyName": f"{payment['shortcode']} - SANDBOX B2C",
                        "CreditPartyName": f"{payment['phone']} - SANDBOX CUSTOMER",
                        "OriginatorConversationID": payment["originator_conversation_id"],
                        "InitiatedTime": int(datetime.now().strftime("%Y%m%d%H%M%S")),
                        "DebitAccountType": "Utility Account",
                        "DebitPartyCharges": "Fee For B2C Payment|KES|22.40" if completed else None,
                        # Sandbox convention: the original failure code, so a failed payment
                        # found by a query can be classified like its callback would have been.
                        "TransactionReason": None if completed else str(payment["result_code"]),
                        "ReasonType": "Business Payment to Customer via API"
                        if completed
                        else payment["result_desc"],
                        "TransactionStatus": payment["status"],
                        "FinalisedTime": int(datetime.now().strftime("%Y%m%d%H%M%S")),
                        "Amount": payment["amount"],
                        "ConversationID": payment["conversation_id"],
                        "ReceiptNo": payment["transaction_id"] if completed else None,
                    }
                )
            },
        )
        return {"Result": result}

    # --- callbacks -----------------------------------------------------------------------

    def _deliver(self, record: dict[str, Any], url: str, payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._post_later(record, url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_later(self, record: dict[str, Any], url: str, payload: dict[str, Any]) -> None:
        await asyncio.sleep(self.opts.callback_delay_ms / 1000)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(url, json=payload)
            record["callback"] = "delivered" if response.status_code < 300 else "rejected"
            record["callback_status"] = response.status_code
        except httpx.HTTPError as exc:
            record["callback"] = "failed"
            record["callback_error"] = type(exc).__name__
            # Not the URL itself: a callback URL carries the receiver's secret path token.
            log.warning("mpesa sandbox: a callback failed: %s", type(exc).__name__)
