"""Stripe sandbox: connected accounts, platform balance, transfers, reversals (API v1).

Behaviours emulated (API_CONTRACTS.md §3.8):

* form bodies with bracket notation (`metadata[k]=v`, `expand[0]=x`), `Authorization: Bearer
  sk_test_...` (401 otherwise), `Stripe-Version` ignored, a `Request-Id` header on every answer;
* idempotency as Stripe does it: the first answer to a POST whose execution started is stored
  under its `Idempotency-Key` and replayed for the same key and parameters (stored 500s
  included, with `Idempotent-Replayed: true`); the same key with other parameters gives 400
  `idempotency_error`; a key whose first request is still running gives 409;
* transfers debit the platform's available balance (400 `balance_insufficient` when short),
  need a known destination whose `transfers` capability is active, and can be listed by
  `transfer_group` / `destination`; reversals give the money back (over-reversal is 400);
* a request-rate limit (token bucket, `rate_limit_per_second` / `burst`) answering 429 in
  Stripe's shape, like the live API's 25 requests/s in test mode.

Options (constructor keywords, also accepted by `configure`):
    accounts: list of account specs (see `_account_from_spec`); default `DEV_CONNECT_ACCOUNTS`
    balance: {"usd": 100000000} available platform balance per currency (minor units)
    secret_key: when set, the only accepted API key; otherwise any `sk_test_...`
    rate_limit_per_second / rate_limit_burst: None = unlimited
    transfer_failure_rate: share of transfer creations failing with a stored 500 (0)
    lost_response_rate: share of created transfers whose answer never arrives (0)
    processing_ms: time a transfer creation takes inside the endpoint (0)
    seed: random seed for ids and the two rates above (11)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..demo import DEV_CONNECT_ACCOUNTS
from .core import TIMEOUT_HOLD_SECONDS, ProviderSandbox, SandboxConfigError

ID_ALPHABET = string.ascii_letters + string.digits
DEFAULT_BALANCE = {"usd": 100_000_000}  # 1,000,000.00 USD available


def parse_form(body: bytes) -> dict[str, Any]:
    """Decode an x-www-form-urlencoded body with Stripe's bracket notation into nested values.

    `metadata[a]=1&expand[0]=x&expand[1]=y` → {"metadata": {"a": "1"}, "expand": ["x", "y"]}.
    """
    result: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        head, _, rest = raw_key.partition("[")
        parts = [head] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        node: Any = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            next_is_list = not last and (parts[index + 1] == "" or parts[index + 1].isdigit())
            if isinstance(node, list):
                if last:
                    node.append(value)
                    break
                position = int(part) if part.isdigit() else len(node)
                while len(node) <= position:
                    node.append([] if next_is_list else {})
                node = node[position]
                continue
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if next_is_list else {})
    return result


def _stripe_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> tuple[int, dict]:
    error: dict[str, Any] = {"message": message, "type": type_}
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return status, {"error": error}


RATE_LIMIT_BODY = {
    "error": {
        "code": "rate_limit",
        "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
        "message": "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        "type": "invalid_request_error",
    }
}


@dataclass
class _Account:
    id: str
    email: str | None = None
    payouts_enabled: bool = True
    charges_enabled: bool = True
    details_submitted: bool = True
    transfers: str = "active"
    currently_due: list[str] = field(default_factory=list)
    past_due: list[str] = field(default_factory=list)
    disabled_reason: str | None = None
    country: str = "US"
    default_currency: str = "usd"

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "object": "account",
            "type": "express",
            "country": self.country,
            "default_currency": self.default_currency,
            "email": self.email,
            "charges_enabled": self.charges_enabled,
            "payouts_enabled": self.payouts_enabled,
            "details_submitted": self.details_submitted,
            "capabilities": {"transfers": self.transfers},
            "requirements": {
                "alternatives": [],
                "current_deadline": None,
                "currently_due": list(self.currently_due),
                "disabled_reason": self.disabled_reason,
                "errors": [],
                "eventually_due": list(self.currently_due),
                "past_due": list(self.past_due),
                "pending_verification": [],
            },
            "metadata": {},
        }


ACCOUNT_FIELDS = {
    "id",
    "email",
    "payouts_enabled",
    "charges_enabled",
    "details_submitted",
    "transfers",
    "currently_due",
    "past_due",
    "disabled_reason",
    "country",
    "default_currency",
}


def _account_from_spec(spec: object) -> _Account:
    if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
        raise SandboxConfigError(f"stripe account spec {spec!r} needs an 'id' string")
    if not spec["id"].startswith("acct_"):
        raise SandboxConfigError(f"stripe account id {spec['id']!r} must start with 'acct_'")
    unknown = set(spec) - ACCOUNT_FIELDS
    if unknown:
        raise SandboxConfigError(
            f"stripe account {spec['id']}: unknown field(s) {sorted(unknown)}; "
            f"known: {sorted(ACCOUNT_FIELDS)}"
        )
    if spec.get("transfers", "active") not in {"active", "inactive", "pending"}:
        raise SandboxConfigError(
            f"stripe account {spec['id']}: transfers is {spec['transfers']!r}, "
            "expected active, inactive or pending"
        )
    return _Account(**spec)


def _balance_from_spec(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise SandboxConfigError(f"stripe balance must be an object, got {raw!r}")
    balance = {}
    for currency, amount in raw.items():
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise SandboxConfigError(f"stripe balance[{currency!r}] is {amount!r}, expected int")
        balance[str(currency).lower()] = amount
    return balance


def _rate(name: str, raw: object) -> float:
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not 0 <= raw <= 1:
        raise SandboxConfigError(f"stripe {name} is {raw!r}, expected 0..1")
    return float(raw)


class _TokenBucket:
    def __init__(self, per_second: float, burst: float) -> None:
        self.per_second = per_second
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class _Stored:
    fingerprint: str
    status: int
    body: dict
    request_id: str
    extra_headers: dict[str, str] = field(default_factory=dict)


class StripeSandbox(ProviderSandbox):
    name = "stripe"

    OPTION_NAMES = {
        "accounts",
        "balance",
        "secret_key",
        "rate_limit_per_second",
        "rate_limit_burst",
        "transfer_failure_rate",
        "lost_response_rate",
        "processing_ms",
        "seed",
    }

    def __init__(self, **options: object) -> None:
        unknown = set(options) - self.OPTION_NAMES
        if unknown:
            raise SandboxConfigError(
                f"stripe sandbox: unknown option(s) {sorted(unknown)}; known: "
                f"{sorted(self.OPTION_NAMES)}"
            )
        super().__init__(**options)
        self.reset()

    # --- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        options = self.options
        self.seed = int(options.get("seed", 11))  # type: ignore[arg-type]
        self._rng = random.Random(self.seed)
        self._fault_rng = random.Random(self.seed + 1)
        self.accounts: dict[str, _Account] = {}
        for spec in options.get("accounts", DEV_CONNECT_ACCOUNTS):  # type: ignore[union-attr]
            account = _account_from_spec(dict(spec))
            self.accounts[account.id] = account
        self.balance = _balance_from_spec(options.get("balance", DEFAULT_BALANCE))
        self.secret_key: str | None = options.get("secret_key")  # type: ignore[assignment]
        self.transfer_failure_rate = _rate(
            "transfer_failure_rate", options.get("transfer_failure_rate", 0.0)
        )
        self.lost_response_rate = _rate("lost_response_rate", options.get("lost_response_rate", 0))
        self.processing_ms = int(options.get("processing_ms", 0))  # type: ignore[arg-type]
        self._set_rate_limit(options.get("rate_limit_per_second"), options.get("rate_limit_burst"))
        self.transfers: dict[str, dict] = {}  # id → transfer object, in creation order
        self.transfer_keys: dict[str, str | None] = {}  # transfer id → idempotency key
        self.reversals: list[dict] = []
        self.idempotency: dict[str, _Stored] = {}
        self.in_flight: set[str] = set()
        self.counts: Counter[str] = Counter()

    def _set_rate_limit(self, per_second: object, burst: object) -> None:
        if per_second is None:
            self.bucket: _TokenBucket | None = None
            return
        if isinstance(per_second, bool) or not isinstance(per_second, int | float):
            raise SandboxConfigError(f"stripe rate_limit_per_second is {per_second!r}")
        if per_second <= 0:
            raise SandboxConfigError(
                f"stripe rate_limit_per_second is {per_second!r}, expected > 0"
            )
        burst_value = float(burst) if isinstance(burst, int | float) else float(per_second)
        self.bucket = _TokenBucket(float(per_second), max(1.0, burst_value))

    def configure(self, body: dict) -> None:
        """Seed or change state: accounts (upsert), balance, rate limit, failure rates.

        `{"accounts": [{"id": "acct_1", "transfers": "inactive"}], "balance": {"usd": 500},
          "rate_limit_per_second": 25, "rate_limit_burst": 25, "transfer_failure_rate": 0.1}`
        Setting `rate_limit_per_second` to null removes the limit. `{"forget_idempotency_keys":
        true}` drops every stored idempotency key, as Stripe prunes keys 24 h after first use:
        a request resent with an old key afterwards is executed again.
        """
        unknown = (
            set(body) - (self.OPTION_NAMES - {"seed", "secret_key"}) - {"forget_idempotency_keys"}
        )
        if unknown:
            raise SandboxConfigError(f"stripe configure: unknown field(s) {sorted(unknown)}")
        accounts = [_account_from_spec(spec) for spec in body.get("accounts", [])]
        balance = _balance_from_spec(body["balance"]) if "balance" in body else None
        for account in accounts:
            self.accounts[account.id] = account
        if balance is not None:
            self.balance.update(balance)
        if "rate_limit_per_second" in body or "rate_limit_burst" in body:
            self._set_rate_limit(body.get("rate_limit_per_second"), body.get("rate_limit_burst"))
        if "transfer_failure_rate" in body:
            self.transfer_failure_rate = _rate(
                "transfer_failure_rate", body["transfer_failure_rate"]
            )
        if "lost_response_rate" in body:
            self.lost_response_rate = _rate("lost_response_rate", body["lost_response_rate"])
        if "processing_ms" in body:
            self.processing_ms = int(body["processing_ms"])
        if body.get("forget_idempotency_keys"):
            self.idempotency.clear()

    def snapshot(self) -> dict:
        transfers = list(self.transfers.values())
        per_key = Counter(key for key in self.transfer_keys.values() if key)
        per_destination = Counter(t["destination"] for t in transfers)
        per_group = Counter(t["transfer_group"] for t in transfers if t["transfer_group"])
        return {
            "accounts": {a.id: a.to_json() for a in self.accounts.values()},
            "balance": dict(self.balance),
            "transfers": [
                {**t, "idempotency_key": self.transfer_keys.get(t["id"])} for t in transfers
            ],
            "transfer_count": len(transfers),
            "transfers_per_idempotency_key": dict(per_key),
            "transfers_per_destination": dict(per_destination),
            "transfers_per_transfer_group": dict(per_group),
            "duplicate_transfer_groups": sorted(g for g, n in per_group.items() if n > 1),
            "reversals": list(self.reversals),
            "idempotency_keys_stored": len(self.idempotency),
            "requests": dict(self.counts),
            "rate_limit_per_second": self.bucket.per_second if self.bucket else None,
        }

    # --- shapes --------------------------------------------------------------------------------

    def _id(self, prefix: str, length: int = 24) -> str:
        return prefix + "".join(self._rng.choice(ID_ALPHABET) for _ in range(length))

    def _response(
        self, status: int, body: dict, request_id: str, extra: dict[str, str] | None = None
    ) -> Response:
        headers = {"Request-Id": request_id, "Stripe-Version": "2026-10-28.endive"}
        headers.update(extra or {})
        return JSONResponse(body, status_code=status, headers=headers)

    def error_response(self) -> Response:
        _, body = _stripe_error(500, "An unknown error occurred", type_="api_error")
        return JSONResponse(body, status_code=500, headers={"Request-Id": self._id("req_", 14)})

    def rate_limited_response(self) -> Response:
        self.counts["rate_limited"] += 1
        return JSONResponse(
            RATE_LIMIT_BODY, status_code=429, headers={"Request-Id": self._id("req_", 14)}
        )

    # --- request handling ------------------------------------------------------------------

    def _authenticate(self, request: Request) -> tuple[int, dict] | None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            return _stripe_error(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        valid = key == self.secret_key if self.secret_key else key.startswith("sk_test_")
        if not valid:
            masked = f"{key[:8]}****{key[-4:]}" if len(key) > 12 else "****"
            return _stripe_error(401, f"Invalid API Key provided: {masked}")
        return None

    async def _handle(self, request: Request, action) -> Response:
        request_id = self._id("req_", 14)
        self.counts["total"] += 1
        if self.bucket is not None and not self.bucket.take():
            return self.rate_limited_response()
        denied = self._authenticate(request)
        if denied is not None:
            return self._response(*denied, request_id)
        params = parse_form(await request.body()) if request.method == "POST" else {}
        if request.method == "GET":
            params = dict(request.query_params)
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        if key is None:
            status, body, extra, _store = await action(request, params)
            return self._response(status, body, request_id, extra)
        if len(key) > 255:
            return self._response(
                *_stripe_error(400, "Idempotency-Key must be at most 255 characters long."),
                request_id,
            )
        fingerprint = hashlib.sha256(
            json.dumps([request.url.path, params], sort_keys=True).encode()
        ).hexdigest()
        stored = self.idempotency.get(key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                return self._response(
                    *_stripe_error(
                        400,
                        f"Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        type_="idempotency_error",
                    ),
                    request_id,
                )
            self.counts["replayed"] += 1
            return self._response(
                stored.status,
                stored.body,
                request_id,
                {
                    **stored.extra_headers,
                    "Idempotent-Replayed": "true",
                    "Original-Request": stored.request_id,
                },
            )
        if key in self.in_flight:
            return self._response(
                *_stripe_error(
                    409,
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    f"going through): {key}. Please try again later.",
                    code="idempotency_key_in_use",
                ),
                request_id,
            )
        self.in_flight.add(key)
        try:
            status, body, extra, store = await action(request, params, key)
            if store:
                self.idempotency[key] = _Stored(fingerprint, status, body, request_id, extra)
        finally:
            self.in_flight.discard(key)
        if store == "lost":
            await asyncio.sleep(TIMEOUT_HOLD_SECONDS)
        return self._response(status, body, request_id, extra)

    # --- endpoints -------------------------------------------------------------------------

    async def _get_account(self, request: Request, params: dict, key: str | None = None):
        account_id = request.path_params["account_id"]
        account = self.accounts.get(account_id)
        if account is None:
            return (
                *_stripe_error(
                    404, f"No such account: '{account_id}'", code="resource_missing", param="id"
                ),
                {},
                False,
            )
        return 200, account.to_json(), {}, False

    async def _get_balance(self, request: Request, params: dict, key: str | None = None):
        body = {
            "object": "balance",
            "livemode": False,
            "available": [
                {"amount": amount, "currency": currency, "source_types": {"card": amount}}
                for currency, amount in sorted(self.balance.items())
            ],
            "pending": [
                {"amount": 0, "currency": currency, "source_types": {"card": 0}}
                for currency in sorted(self.balance)
            ],
        }
        return 200, body, {}, False

    def _validate_transfer(self, params: dict) -> tuple[int, dict] | None:
        for name in ("amount", "currency", "destination"):
            if not params.get(name):
                return _stripe_error(
                    400, f"Missing required param: {name}.", code="parameter_missing", param=name
                )
        amount = params["amount"]
        if not isinstance(amount, str) or not amount.isdigit() or int(amount) <= 0:
            return _stripe_error(
                400,
                f"Invalid positive integer: {amount!r}",
                code="parameter_invalid_integer",
                param="amount",
            )
        currency = params["currency"]
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            return _stripe_error(400, f"Invalid currency: {currency}.", param="currency")
        metadata = params.get("metadata", {})
        if not isinstance(metadata, dict):
            return _stripe_error(400, "Invalid object", param="metadata")
        return None

    async def _create_transfer(self, request: Request, params: dict, key: str | None = None):
        invalid = self._validate_transfer(params)
        if invalid is not None:
            return *invalid, {}, False  # validation errors are not stored
        # Execution starts here: from now on the answer is stored under the idempotency key.
        if self.processing_ms:
            await asyncio.sleep(self.processing_ms / 1000)
        self.counts["transfer_attempts"] += 1
        store = key is not None
        if self._fault_rng.random() < self.transfer_failure_rate:
            status, body = _stripe_error(500, "An unknown error occurred", type_="api_error")
            return status, body, {"Stripe-Should-Retry": "false"}, store
        destination = params["destination"]
        account = self.accounts.get(destination)
        if account is None:
            return (
                *_stripe_error(
                    400,
                    f"No such destination: '{destination}'",
                    code="resource_missing",
                    param="destination",
                ),
                {},
                store,
            )
        if account.transfers != "active":
            return (
                *_stripe_error(
                    400,
                    "Your destination account needs to have at least one of the following "
                    "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                    code="insufficient_capabilities_for_transfer",
                    param="destination",
                ),
                {},
                store,
            )
        amount = int(params["amount"])
        currency = params["currency"].lower()
        if self.balance.get(currency, 0) < amount:
            return (
                *_stripe_error(
                    400,
                    "You have insufficient available funds in your Stripe account. Try adding "
                    "funds directly to your available balance by creating Charges using the "
                    "4000000000000077 test card. See: https://stripe.com/docs/testing"
                    "#available-balance",
                    code="balance_insufficient",
                ),
                {},
                store,
            )
        self.balance[currency] -= amount
        transfer_id = self._id("tr_")
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": self._id("txn_"),
            "created": int(time.time()),
            "currency": currency,
            "description": params.get("description"),
            "destination": destination,
            "destination_payment": self._id("py_"),
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "reversals": {
                "object": "list",
                "data": [],
                "has_more": False,
                "total_count": 0,
                "url": f"/v1/transfers/{transfer_id}/reversals",
            },
            "reversed": False,
            "source_transaction": None,
            "source_type": "card",
            "transfer_group": params.get("transfer_group"),
        }
        self.transfers[transfer_id] = transfer
        self.transfer_keys[transfer_id] = key
        self.counts["transfers_created"] += 1
        if store and self._fault_rng.random() < self.lost_response_rate:
            self.counts["responses_lost"] += 1
            return 200, transfer, {}, "lost"
        return 200, transfer, {}, store

    async def _list_transfers(self, request: Request, params: dict, key: str | None = None):
        rows = list(reversed(self.transfers.values()))  # newest first, like Stripe
        if params.get("transfer_group"):
            rows = [t for t in rows if t["transfer_group"] == params["transfer_group"]]
        if params.get("destination"):
            rows = [t for t in rows if t["destination"] == params["destination"]]
        if params.get("starting_after"):
            ids = [t["id"] for t in rows]
            if params["starting_after"] not in ids:
                return (
                    *_stripe_error(
                        400,
                        f"No such transfer: '{params['starting_after']}'",
                        code="resource_missing",
                        param="starting_after",
                    ),
                    {},
                    False,
                )
            rows = rows[ids.index(params["starting_after"]) + 1 :]
        limit_raw = params.get("limit", "10")
        if not str(limit_raw).isdigit() or not 1 <= int(limit_raw) <= 100:
            return (
                *_stripe_error(
                    400,
                    f"Invalid integer: {limit_raw}; limit must be between 1 and 100",
                    param="limit",
                ),
                {},
                False,
            )
        limit = int(limit_raw)
        body = {
            "object": "list",
            "data": rows[:limit],
            "has_more": len(rows) > limit,
            "url": "/v1/transfers",
        }
        return 200, body, {}, False

    async def _get_transfer(self, request: Request, params: dict, key: str | None = None):
        transfer_id = request.path_params["transfer_id"]
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            return (
                *_stripe_error(
                    404, f"No such transfer: '{transfer_id}'", code="resource_missing", param="id"
                ),
                {},
                False,
            )
        return 200, transfer, {}, False

    async def _create_reversal(self, request: Request, params: dict, key: str | None = None):
        transfer_id = request.path_params["transfer_id"]
        transfer = self.transfers.get(transfer_id)
        if transfer is None:
            return (
                *_stripe_error(
                    404, f"No such transfer: '{transfer_id}'", code="resource_missing", param="id"
                ),
                {},
                False,
            )
        remaining = transfer["amount"] - transfer["amount_reversed"]
        raw_amount = params.get("amount")
        if raw_amount is not None and (not str(raw_amount).isdigit() or int(raw_amount) <= 0):
            return (
                *_stripe_error(
                    400,
                    f"Invalid positive integer: {raw_amount!r}",
                    code="parameter_invalid_integer",
                    param="amount",
                ),
                {},
                False,
            )
        store = key is not None
        if remaining == 0:
            return (
                *_stripe_error(
                    400, f"Transfer {transfer_id} has already been fully reversed.", param="amount"
                ),
                {},
                store,
            )
        amount = remaining if raw_amount is None else int(raw_amount)
        if amount > remaining:
            return (
                *_stripe_error(
                    400,
                    f"Amount ({amount}) is greater than the amount remaining to be reversed on "
                    f"transfer {transfer_id} ({remaining}).",
                    param="amount",
                ),
                {},
                store,
            )
        reversal = {
            "id": self._id("trr_"),
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": self._id("txn_"),
            "created": int(time.time()),
            "currency": transfer["currency"],
            "destination_payment_refund": self._id("pyr_"),
            "metadata": params.get("metadata", {}),
            "source_refund": None,
            "transfer": transfer_id,
        }
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        transfer["reversals"]["total_count"] += 1
        self.balance[transfer["currency"]] = self.balance.get(transfer["currency"], 0) + amount
        self.reversals.append(reversal)
        return 200, reversal, {}, store

    def routes(self) -> list[BaseRoute]:
        def route(path: str, action, method: str) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._handle(request, action)

            return Route(path, endpoint, methods=[method])

        return [
            route("/v1/accounts/{account_id}", self._get_account, "GET"),
            route("/v1/balance", self._get_balance, "GET"),
            route("/v1/transfers", self._create_transfer, "POST"),
            route("/v1/transfers", self._list_transfers, "GET"),
            route("/v1/transfers/{transfer_id}", self._get_transfer, "GET"),
            route("/v1/transfers/{transfer_id}/reversals", self._create_reversal, "POST"),
        ]
