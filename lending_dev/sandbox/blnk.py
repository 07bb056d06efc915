"""A local Blnk ledger speaking Blnk's wire format (see API_CONTRACTS.md §4).

What it emulates:
- ledgers and balances with integer minor-unit amounts; `@Name` internal balances are created
  on first use (per currency, in the general ledger) and may go negative;
- `POST /transactions` validated as Blnk validates (amount xor precise_amount, required
  description, integer precision, positive amount, source != destination);
- queued mode (default): 201 QUEUED, the outcome as a `<ref>_q` child (APPLIED, INFLIGHT, or
  REJECTED with `meta_data.blnk_rejection_reason`); a duplicate reference is accepted with 201
  and silently dropped;
- `skip_queue: true`: APPLIED / INFLIGHT in the 201, 409 `TXN_DUPLICATE_REFERENCE`, 400
  `TXN_INSUFFICIENT_FUNDS`;
- `GET /transactions/{id}`, `GET /transactions/reference/{ref}`;
- inflight holds and `PUT /transactions/inflight/{id}` commit (full or partial) / void, with the
  >= 0.15 queued answer (`queued: true`) or the child transaction (`skip_queue` and legacy), and
  409 on a second commit/void of a settled hold;
- errors in the >= 0.15 shape (`error` + `error_detail`) or, with `legacy_errors`, the older
  `{"error": "..."}` with HTTP 400;
- secure mode: with `secret_key` set, `X-Blnk-Key` is required (401 AUTH_MISSING_API_KEY /
  AUTH_INVALID_API_KEY).
With `legacy_errors` inflight updates also answer as before 0.15 (the child transaction).
Not emulated: `sources`/`destinations` distributions, scheduled transactions, bulk, refunds.

Options (constructor or POST /_admin/blnk/configure): `secret_key` (None), `legacy_errors`
(False), `seed` (11, for ids), `balances` (list of `{balance_id?, ledger_id?, currency,
indicator?, identity_id?, meta_data?, balance}` created and funded from `@World` at reset; via
configure they are created or topped up to `balance`), `ledgers` (list of `{ledger_id?, name}`),
`demo_data` (True: start with the escrow workflow's demo balances, `lending_dev/demo.py`, so the
sandbox matches `lending seed` without any ledger call; constructor only), `hold_queue` (False:
queued posts are processed at once; True: they stay QUEUED, with no `<ref>_q` outcome yet, as
when Blnk's queue worker lags, until `hold_queue` is set back to false, which processes them in
order).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..demo import DEMO_BLNK_BALANCES
from .core import ProviderSandbox, SandboxConfigError

GENERAL_LEDGER_ID = "general_ledger_id"
ZERO_TIME = "0001-01-01T00:00:00Z"
INSUFFICIENT_FUNDS_MESSAGE = "insufficient funds in source balance"
OPTION_KEYS = {
    "secret_key",
    "legacy_errors",
    "seed",
    "balances",
    "ledgers",
    "demo_data",
    "hold_queue",
}

Handler = Callable[[Request], Awaitable[Response]]


class BlnkApiError(Exception):
    """An error answer: HTTP status, >= 0.15 code, message, and the legacy body key."""

    def __init__(self, status: int, code: str, message: str, key: str = "error") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.key = status, code, message, key


def _validation(message: str, code: str = "TXN_VALIDATION_ERROR") -> BlnkApiError:
    return BlnkApiError(400, code, message, key="errors")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class BlnkSandbox(ProviderSandbox):
    name = "blnk"

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - OPTION_KEYS
        if unknown:
            raise SandboxConfigError(f"blnk sandbox: unknown option(s) {sorted(unknown)}")
        super().__init__(**options)
        self.reset()

    # -- state -----------------------------------------------------------------------------

    def reset(self) -> None:
        self.secret_key: str | None = self.options.get("secret_key")  # type: ignore[assignment]
        self.legacy_errors = bool(self.options.get("legacy_errors", False))
        self._rng = random.Random(int(self.options.get("seed", 11)))  # type: ignore[arg-type]
        self.ledgers: dict[str, dict[str, Any]] = {}
        self.balances: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.by_reference: dict[str, str] = {}
        self.post_attempts: dict[str, int] = {}
        self.dropped_duplicates: list[str] = []
        self.rejected_duplicates: list[str] = []
        # Inflight bookkeeping per hold: amount committed so far, voided or not.
        self.holds: dict[str, dict[str, Any]] = {}
        self.hold_queue = bool(self.options.get("hold_queue", False))
        # Posts accepted as QUEUED whose outcome the (emulated) worker has not produced yet.
        self.queue: list[tuple[dict[str, Any], int, int, str]] = []
        self._ledger({"ledger_id": GENERAL_LEDGER_ID, "name": "General Ledger"})
        for ledger in self.options.get("ledgers") or []:  # type: ignore[union-attr]
            self._ledger(ledger)
        balances = list(self.options.get("balances") or [])  # type: ignore[arg-type]
        if self.options.get("demo_data", True):
            balances = DEMO_BLNK_BALANCES + balances
        for spec in balances:
            self._seed_balance(spec)

    def configure(self, body: dict) -> None:
        if not isinstance(body, dict):
            raise SandboxConfigError(f"blnk configure body must be an object, got {body!r}")
        unknown = set(body) - (OPTION_KEYS - {"seed", "demo_data"})
        if unknown:
            raise SandboxConfigError(f"blnk configure: unknown key(s) {sorted(unknown)}")
        if "legacy_errors" in body:
            self.legacy_errors = bool(body["legacy_errors"])
        if "secret_key" in body:
            self.secret_key = body["secret_key"] or None
        for ledger in body.get("ledgers") or []:
            self._ledger(ledger)
        for spec in body.get("balances") or []:
            self._seed_balance(spec)
        if "hold_queue" in body:
            self.hold_queue = bool(body["hold_queue"])
            if not self.hold_queue:
                self._drain_queue()

    def snapshot(self) -> dict:
        return {
            "legacy_errors": self.legacy_errors,
            "secure": self.secret_key is not None,
            "ledgers": list(self.ledgers.values()),
            "balances": list(self.balances.values()),
            "transactions": list(self.transactions.values()),
            "post_attempts": dict(self.post_attempts),
            "dropped_duplicates": list(self.dropped_duplicates),
            "rejected_duplicates": list(self.rejected_duplicates),
            "hold_queue": self.hold_queue,
            "queued": [body["reference"] for body, _, _, _ in self.queue],
        }

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"

    def _ledger(self, spec: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(spec, dict) or not spec.get("name"):
            raise SandboxConfigError(f"blnk ledger needs a name: {spec!r}")
        ledger_id = spec.get("ledger_id") or self._new_id("ldg")
        ledger = {
            "ledger_id": ledger_id,
            "name": spec["name"],
            "created_at": _now(),
            "meta_data": spec.get("meta_data") or {},
        }
        self.ledgers.setdefault(ledger_id, ledger)
        return self.ledgers[ledger_id]

    def _new_balance(self, spec: dict[str, Any]) -> dict[str, Any]:
        balance_id = spec.get("balance_id") or self._new_id("bln")
        balance = {
            "balance_id": balance_id,
            "ledger_id": spec.get("ledger_id") or GENERAL_LEDGER_ID,
            "identity_id": spec.get("identity_id") or "",
            "indicator": spec.get("indicator") or "",
            "currency": spec["currency"],
            "balance": 0,
            "credit_balance": 0,
            "debit_balance": 0,
            "inflight_balance": 0,
            "inflight_credit_balance": 0,
            "inflight_debit_balance": 0,
            "version": 0,
            "created_at": _now(),
            "inflight_expires_at": ZERO_TIME,
            "meta_data": spec.get("meta_data") or {},
        }
        self.balances[balance_id] = balance
        return balance

    def _seed_balance(self, spec: dict[str, Any]) -> None:
        """Create (or find) a balance and fund it from @World up to `spec['balance']`."""
        if not isinstance(spec, dict) or not spec.get("currency"):
            raise SandboxConfigError(f"blnk balance needs a currency: {spec!r}")
        target = spec.get("balance", 0)
        if not _is_int(target):
            raise SandboxConfigError(f"blnk balance amount must be an integer: {spec!r}")
        ledger_id = spec.get("ledger_id") or GENERAL_LEDGER_ID
        if ledger_id not in self.ledgers:
            self._ledger({"ledger_id": ledger_id, "name": ledger_id})
        balance = self.balances.get(spec.get("balance_id") or "")
        if balance is None:
            balance = self._new_balance({**spec, "ledger_id": ledger_id})
        difference = target - balance["balance"]
        if difference == 0:
            return
        world = self._internal("@World", balance["currency"])
        source, destination = (world, balance) if difference > 0 else (balance, world)
        txn = self._record(
            reference=self._new_id("sandbox-funding"),
            source=source,
            destination=destination,
            precise_amount=abs(difference),
            precision=1,
            currency=balance["currency"],
            description="sandbox funding",
            status="APPLIED",
            meta_data={"sandbox_seed": True},
        )
        self._apply(txn, source, destination)

    def _internal(self, indicator: str, currency: str) -> dict[str, Any]:
        for balance in self.balances.values():
            if balance["indicator"] == indicator and balance["currency"] == currency:
                return balance
        return self._new_balance({"indicator": indicator, "currency": currency})

    # -- HTTP plumbing ------------------------------------------------------------------------

    def _error(self, error: BlnkApiError) -> Response:
        if self.legacy_errors:
            status = error.status if error.status in (401, 429) or error.status >= 500 else 400
            return JSONResponse({error.key: error.message}, status_code=status)
        body = {
            error.key: error.message,
            "error_detail": {"code": error.code, "message": error.message},
        }
        return JSONResponse(body, status_code=error.status)

    def error_response(self) -> Response:
        return self._error(BlnkApiError(500, "GEN_INTERNAL", "internal server error"))

    def rate_limited_response(self) -> Response:
        return self._error(BlnkApiError(429, "GEN_RATE_LIMITED", "rate limit exceeded"))

    def _endpoint(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                if self.secret_key is not None:
                    key = request.headers.get("x-blnk-key")
                    if not key:
                        raise BlnkApiError(401, "AUTH_MISSING_API_KEY", "API key is required")
                    if key != self.secret_key:
                        raise BlnkApiError(401, "AUTH_INVALID_API_KEY", "invalid API key")
                return await handler(request)
            except BlnkApiError as error:
                return self._error(error)

        return endpoint

    async def _json(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _validation("invalid JSON body", "GEN_MALFORMED_REQUEST") from None
        if not isinstance(body, dict):
            raise _validation("request body must be a JSON object", "GEN_MALFORMED_REQUEST")
        return body

    def routes(self) -> list[BaseRoute]:
        e = self._endpoint
        return [
            Route("/ledgers", e(self._create_ledger), methods=["POST"]),
            Route("/ledgers", e(self._list_ledgers), methods=["GET"]),
            Route("/ledgers/{ledger_id}", e(self._get_ledger), methods=["GET"]),
            Route("/balances", e(self._create_balance), methods=["POST"]),
            Route(
                "/balances/indicator/{indicator}/currency/{currency}",
                e(self._get_balance_by_indicator),
                methods=["GET"],
            ),
            Route("/balances/{balance_id}", e(self._get_balance), methods=["GET"]),
            Route("/transactions", e(self._create_transaction), methods=["POST"]),
            Route(
                "/transactions/reference/{reference:path}",
                e(self._get_by_reference),
                methods=["GET"],
            ),
            Route("/transactions/inflight/{txn_id}", e(self._update_inflight), methods=["PUT"]),
            Route("/transactions/{txn_id}", e(self._get_transaction), methods=["GET"]),
        ]

    # -- ledgers and balances -----------------------------------------------------------------

    async def _create_ledger(self, request: Request) -> Response:
        body = await self._json(request)
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise _validation("name is required", "GEN_VALIDATION_ERROR")
        ledger = self._ledger({"name": body["name"], "meta_data": body.get("meta_data")})
        return JSONResponse(ledger, status_code=201)

    async def _list_ledgers(self, request: Request) -> Response:
        return JSONResponse(list(self.ledgers.values()))

    async def _get_ledger(self, request: Request) -> Response:
        ledger_id = request.path_params["ledger_id"]
        if ledger_id not in self.ledgers:
            raise BlnkApiError(404, "LGR_NOT_FOUND", f"ledger with ID '{ledger_id}' not found")
        return JSONResponse(self.ledgers[ledger_id])

    async def _create_balance(self, request: Request) -> Response:
        body = await self._json(request)
        ledger_id, currency = body.get("ledger_id"), body.get("currency")
        if not isinstance(ledger_id, str) or not ledger_id:
            raise _validation("ledger_id is required", "BAL_VALIDATION_ERROR")
        if not isinstance(currency, str) or not currency:
            raise _validation("currency is required", "BAL_VALIDATION_ERROR")
        if ledger_id not in self.ledgers:
            raise BlnkApiError(404, "LGR_NOT_FOUND", f"ledger with ID '{ledger_id}' not found")
        meta = body.get("meta_data")
        if meta is not None and not isinstance(meta, dict):
            raise _validation("meta_data must be an object", "BAL_VALIDATION_ERROR")
        balance = self._new_balance(
            {
                "ledger_id": ledger_id,
                "currency": currency,
                "identity_id": body.get("identity_id"),
                "indicator": body.get("indicator"),
                "meta_data": meta,
            }
        )
        return JSONResponse(balance, status_code=201)

    def _balance(self, balance_id: str) -> dict[str, Any]:
        if balance_id not in self.balances:
            raise BlnkApiError(404, "BAL_NOT_FOUND", f"balance with ID '{balance_id}' not found")
        return self.balances[balance_id]

    async def _get_balance(self, request: Request) -> Response:
        return JSONResponse(self._balance(request.path_params["balance_id"]))

    async def _get_balance_by_indicator(self, request: Request) -> Response:
        indicator = request.path_params["indicator"]
        currency = request.path_params["currency"]
        for balance in self.balances.values():
            if balance["indicator"] == indicator and balance["currency"] == currency:
                return JSONResponse(balance)
        raise BlnkApiError(
            404, "BAL_NOT_FOUND", f"balance with indicator '{indicator}' ({currency}) not found"
        )

    # -- transactions -------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> tuple[int, int]:
        """ValidateRecordTransaction: returns (precise_amount, precision) or raises."""
        for name in ("reference", "currency", "source", "destination", "description"):
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise _validation(f"{name} is required")
        if body["source"] == body["destination"]:
            raise _validation("source and destination cannot be the same")
        precision = body.get("precision", 1)
        if not _is_int(precision) or precision < 1:
            raise _validation("precision must be an integer", "TXN_PRECISION_NOT_INTEGER")
        amount, precise = body.get("amount"), body.get("precise_amount")
        if amount is not None and precise is not None:
            raise _validation("amount and precise_amount cannot both be set")
        if amount is None and precise is None:
            raise _validation("amount or precise_amount is required")
        if precise is not None:
            if not _is_int(precise):
                raise _validation("precise_amount must be an integer")
            value = precise
        else:
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise _validation("amount must be a number")
            decimal = Decimal(str(amount))
            if not decimal.is_finite():
                raise _validation(f"amount {amount} is not a finite number")
            if len(decimal.as_tuple().digits) > 15:
                raise _validation("amount has more than 15 significant digits")
            scaled = decimal * precision
            if scaled != scaled.to_integral_value():
                raise _validation(f"amount {amount} is finer than precision {precision}")
            value = int(scaled)
        if value <= 0:
            raise _validation("transaction amount must be positive", "TXN_INVALID_AMOUNT")
        for name in ("meta_data",):
            if body.get(name) is not None and not isinstance(body[name], dict):
                raise _validation(f"{name} must be an object")
        return value, precision

    def _resolve(self, balance_id: str, currency: str) -> dict[str, Any]:
        if balance_id.startswith("@"):
            return self._internal(balance_id, currency)
        balance = self._balance(balance_id)
        if balance["currency"] != currency:
            raise _validation(
                f"balance '{balance_id}' is in {balance['currency']}, transaction in {currency}"
            )
        return balance

    def _record(
        self,
        *,
        reference: str,
        source: dict[str, Any],
        destination: dict[str, Any],
        precise_amount: int,
        precision: int,
        currency: str,
        description: str,
        status: str,
        parent: str = "",
        allow_overdraft: bool = False,
        inflight: bool = False,
        meta_data: dict[str, Any] | None = None,
        store: bool = True,
    ) -> dict[str, Any]:
        txn_id = self._new_id("txn")
        digest = f"{reference}|{source['balance_id']}|{destination['balance_id']}|{precise_amount}"
        txn = {
            "transaction_id": txn_id,
            "parent_transaction": parent,
            "source": source["balance_id"],
            "destination": destination["balance_id"],
            "reference": reference,
            "amount": float(Decimal(precise_amount) / precision),
            "precise_amount": precise_amount,
            "precision": precision,
            "currency": currency,
            "description": description,
            "status": status,
            "hash": hashlib.sha256(digest.encode()).hexdigest(),
            "allow_overdraft": allow_overdraft,
            "inflight": inflight,
            "created_at": _now(),
            "scheduled_for": ZERO_TIME,
            "inflight_expiry_date": ZERO_TIME,
            "inflight_commit_date": ZERO_TIME,
            "effective_date": _now(),
            "meta_data": dict(meta_data or {}),
        }
        if store:
            self.transactions[txn_id] = txn
            self.by_reference[reference] = txn_id
        return txn

    @staticmethod
    def _refresh(balance: dict[str, Any]) -> None:
        balance["balance"] = balance["credit_balance"] - balance["debit_balance"]
        balance["inflight_balance"] = (
            balance["inflight_credit_balance"] - balance["inflight_debit_balance"]
        )
        balance["version"] += 1

    def _apply(self, txn: dict[str, Any], source: dict, destination: dict) -> None:
        amount = txn["precise_amount"]
        if txn["status"] == "INFLIGHT":
            source["inflight_debit_balance"] += amount
            destination["inflight_credit_balance"] += amount
        else:
            source["debit_balance"] += amount
            destination["credit_balance"] += amount
        self._refresh(source)
        self._refresh(destination)

    @staticmethod
    def _has_funds(source: dict, amount: int, body: dict[str, Any]) -> bool:
        """Internal (@) balances may go negative; others need the amount available (balance
        less inflight debits), plus `overdraft_limit` when overdraft is allowed (no limit:
        unlimited overdraft)."""
        if source["indicator"].startswith("@"):
            return True
        available = source["balance"] - source["inflight_debit_balance"]
        if body.get("allow_overdraft"):
            limit = body.get("overdraft_limit") or 0
            return not limit or available + limit >= amount
        return available >= amount

    def _process(self, body: dict, amount: int, precision: int, reference: str, parent: str):
        """Check funds and apply. Returns the stored transaction (APPLIED / INFLIGHT), or raises
        BlnkApiError for insufficient funds or an unknown balance."""
        currency = body["currency"]
        source = self._resolve(body["source"], currency)
        destination = self._resolve(body["destination"], currency)
        if not self._has_funds(source, amount, body):
            raise BlnkApiError(400, "TXN_INSUFFICIENT_FUNDS", INSUFFICIENT_FUNDS_MESSAGE)
        txn = self._record(
            reference=reference,
            source=source,
            destination=destination,
            precise_amount=amount,
            precision=precision,
            currency=currency,
            description=body["description"],
            status="INFLIGHT" if body.get("inflight") else "APPLIED",
            parent=parent,
            allow_overdraft=bool(body.get("allow_overdraft")),
            inflight=bool(body.get("inflight")),
            meta_data=body.get("meta_data"),
        )
        if txn["inflight"]:
            self.holds[txn["transaction_id"]] = {"committed": 0, "voided": False}
        self._apply(txn, source, destination)
        return txn

    async def _create_transaction(self, request: Request) -> Response:
        body = await self._json(request)
        amount, precision = self._validate(body)
        reference = body["reference"]
        self.post_attempts[reference] = self.post_attempts.get(reference, 0) + 1
        duplicate = reference in self.by_reference or f"{reference}_q" in self.by_reference
        if body.get("skip_queue"):
            if duplicate:
                self.rejected_duplicates.append(reference)
                raise BlnkApiError(
                    409, "TXN_DUPLICATE_REFERENCE", f"reference {reference} has already been used"
                )
            return JSONResponse(self._process(body, amount, precision, reference, ""), 201)
        return JSONResponse(self._queue(body, amount, precision, duplicate), status_code=201)

    def _queue(self, body: dict, amount: int, precision: int, duplicate: bool) -> dict:
        """Queued path: answer QUEUED; the outcome is a `<ref>_q` child. A duplicate is
        answered the same way and then dropped by the (emulated) background worker."""
        reference = body["reference"]
        placeholder = {"balance_id": body["source"]}, {"balance_id": body["destination"]}
        queued = self._record(
            reference=reference,
            source=placeholder[0],
            destination=placeholder[1],
            precise_amount=amount,
            precision=precision,
            currency=body["currency"],
            description=body["description"],
            status="QUEUED",
            allow_overdraft=bool(body.get("allow_overdraft")),
            inflight=bool(body.get("inflight")),
            meta_data=body.get("meta_data"),
            store=not duplicate,
        )
        if duplicate:
            self.dropped_duplicates.append(reference)
            return queued
        if self.hold_queue:
            self.queue.append((body, amount, precision, queued["transaction_id"]))
            return queued
        self._work(body, amount, precision, queued["transaction_id"])
        return queued

    def _drain_queue(self) -> None:
        held, self.queue = self.queue, []
        for body, amount, precision, parent in held:
            self._work(body, amount, precision, parent)

    def _work(self, body: dict, amount: int, precision: int, parent: str) -> None:
        """The queue worker: apply the post as `<ref>_q` (child of the QUEUED `parent`), or
        record it REJECTED with `meta_data.blnk_rejection_reason`."""
        reference = body["reference"]
        try:
            self._process(body, amount, precision, f"{reference}_q", parent)
        except BlnkApiError as error:
            self._record(
                reference=f"{reference}_q",
                source={"balance_id": body["source"]},
                destination={"balance_id": body["destination"]},
                precise_amount=amount,
                precision=precision,
                currency=body["currency"],
                description=body["description"],
                status="REJECTED",
                parent=parent,
                meta_data={**(body.get("meta_data") or {}), "blnk_rejection_reason": error.message},
            )

    async def _get_transaction(self, request: Request) -> Response:
        txn_id = request.path_params["txn_id"]
        if txn_id not in self.transactions:
            raise BlnkApiError(404, "TXN_NOT_FOUND", f"transaction with ID '{txn_id}' not found")
        return JSONResponse(self.transactions[txn_id])

    async def _get_by_reference(self, request: Request) -> Response:
        reference = request.path_params["reference"]
        if reference not in self.by_reference:
            raise BlnkApiError(
                404, "TXN_NOT_FOUND", f"transaction with reference '{reference}' not found"
            )
        return JSONResponse(self.transactions[self.by_reference[reference]])

    # -- inflight -----------------------------------------------------------------------------

    async def _update_inflight(self, request: Request) -> Response:
        txn_id = request.path_params["txn_id"]
        body = await self._json(request)
        status = body.get("status")
        if status not in ("commit", "void"):
            raise BlnkApiError(
                400, "TXN_INVALID_STATUS_ACTION", "status not supported. use either commit or void"
            )
        if txn_id not in self.transactions:
            raise BlnkApiError(404, "TXN_NOT_FOUND", f"transaction with ID '{txn_id}' not found")
        parent = self.transactions[txn_id]
        if parent["status"] != "INFLIGHT":
            raise BlnkApiError(
                400, "TXN_NOT_INFLIGHT", f"transaction {txn_id} is not in inflight status"
            )
        hold = self.holds[txn_id]
        if hold["voided"]:
            raise BlnkApiError(
                409, "TXN_ALREADY_VOIDED", f"transaction {txn_id} has already been voided"
            )
        remaining = parent["precise_amount"] - hold["committed"]
        if remaining <= 0:
            raise BlnkApiError(409, "TXN_ALREADY_COMMITTED", "Transaction already committed")
        amount = remaining
        if status == "commit" and body.get("precise_amount") is not None:
            amount = body["precise_amount"]
            if not _is_int(amount) or amount <= 0:
                raise _validation("precise_amount must be a positive integer")
            if amount > remaining:
                raise BlnkApiError(
                    400,
                    "TXN_COMMIT_AMOUNT_EXCEEDED",
                    f"cannot commit more than the remaining inflight amount {remaining}",
                )
        source = self.balances[parent["source"]]
        destination = self.balances[parent["destination"]]
        source["inflight_debit_balance"] -= amount
        destination["inflight_credit_balance"] -= amount
        if status == "commit":
            source["debit_balance"] += amount
            destination["credit_balance"] += amount
            hold["committed"] += amount
        else:
            hold["voided"] = True
        self._refresh(source)
        self._refresh(destination)
        child = self._record(
            reference=self._new_id("ref"),
            source=source,
            destination=destination,
            precise_amount=amount,
            precision=parent["precision"],
            currency=parent["currency"],
            description=parent["description"],
            status="APPLIED" if status == "commit" else "VOID",
            parent=txn_id,
            meta_data=parent["meta_data"],
        )
        if body.get("skip_queue") or self.legacy_errors:
            return JSONResponse(child)
        return JSONResponse({**parent, "queued": True})
