"""Apache Fineract emulation: multi-tenant loans, clients, disburse and repayment commands.

Mounted under `/fineract`; real paths below it (`/fineract-provider/api/v1/loans`, ...).
Faithful to API_CONTRACTS.md §1.10: tenant header (or `tenantIdentifier`) required → 400,
Basic auth → 401, `[y, m, d]` dates, null fields omitted, `status.value`, `summary` only from
status 300, `{totalFilteredRecords, pageItems}` with no limit meaning everything, `status`
filter on >= 1.9 and `sqlSearch` before (each version silently ignores the other parameter, as
JAX-RS does), disburse/repayment validation with ApiGlobalErrorResponse bodies, Idempotency-Key
replay with `x-served-from-cache` and 425 while in flight (>= 1.9 only), injectable 409
`error.msg.loan.locked`.

Options (constructor or `POST /_admin/fineract/configure`):
    tenants: list of tenant specs (see `TenantSpec`); default `DEFAULT_TENANTS`
    seed: int (default 42) — every loan, client and phone number derives from it
Configure bodies: `{"tenants": [...]}` replaces the tenants, `{"add_tenants": [...]}`,
`{"add_loans": {"tenant": "acme", "count": 3}}`, `{"lock_loans": {"tenant": "acme",
"loan_ids": [1], "times": 2}}` (next 2 commands on loan 1 answer 409),
`{"processing_delay_ms": 200}` (commands hold their idempotency key that long → 425 for a
concurrent duplicate), `{"invalid_phones": {"tenant": "acme", "every": 3}}` (every 3rd new
client from now on has an unusable phone).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import random
import re
import time
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..demo import DEFAULT_TENANTS
from .core import ProviderSandbox, SandboxConfigError

API = "/fineract-provider/api/v1"
TENANT_HEADER = "Fineract-Platform-TenantId"
REALM = 'Basic realm="Fineract Platform API"'

STATUS_CODES = {
    100: ("loanStatusType.submitted.and.pending.approval", "Submitted and pending approval"),
    200: ("loanStatusType.approved", "Approved"),
    300: ("loanStatusType.active", "Active"),
    600: ("loanStatusType.closed.obligations.met", "Closed (obligations met)"),
    700: ("loanStatusType.overpaid", "Overpaid"),
}
DISBURSE_KEYS = frozenset(
    {
        "actualDisbursementDate",
        "externalId",
        "note",
        "locale",
        "dateFormat",
        "paymentTypeId",
        "accountNumber",
        "checkNumber",
        "routingCode",
        "receiptNumber",
        "bankNumber",
        "adjustRepaymentDate",
        "transactionAmount",
        "fixedEmiAmount",
        "postDatedChecks",
        "netDisbursalAmount",
    }
)
REPAYMENT_KEYS = frozenset(
    {
        "transactionDate",
        "transactionAmount",
        "externalId",
        "note",
        "locale",
        "dateFormat",
        "paymentTypeId",
        "accountNumber",
        "checkNumber",
        "routingCode",
        "receiptNumber",
        "bankNumber",
        "loanId",
    }
)
# Java date patterns the emulation understands → strptime.
DATE_FORMATS = {"dd MMMM yyyy": "%d %B %Y", "yyyy-MM-dd": "%Y-%m-%d", "dd-MM-yyyy": "%d-%m-%Y"}
SORTABLE = frozenset({"id", "accountNo", "principal"})
SQL_SEARCH = re.compile(r"^\s*l\.loan_status_id\s*=\s*(\d+)\s*$")
PRODUCTS = ((1, "Mobile Micro Loan"), (2, "SME Stock Loan"))
FIRST_NAMES = ("Jane", "Peter", "Amina", "John", "Grace", "Otieno", "Wanjiru", "Kamau", "Achieng")
LAST_NAMES = ("Wanjiru", "Mwangi", "Hassan", "Otieno", "Njeri", "Kiprop", "Mutua", "Chebet")


@dataclass(frozen=True)
class TenantSpec:
    """One emulated tenant. `loans` approved loans are seeded, plus `loans // 5` pending
    approval and `loans // 5` active ones so status filtering matters; every
    `invalid_phone_every`-th client gets an unusable phone number."""

    id: str
    username: str = "mifos"
    password: str = "password"
    loans: int = 20
    version: str = "1.10.0"
    new_loans_per_minute: float = 0.0
    invalid_phone_every: int = 10
    currency: str = "KES"
    timezone: str = "Africa/Nairobi"
    read_only_users: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: object) -> TenantSpec:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise SandboxConfigError(f"fineract tenant spec {raw!r} needs a string 'id'")
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise SandboxConfigError(
                f"fineract tenant {raw['id']!r}: unknown field(s) {sorted(unknown)}"
            )
        spec = cls(**raw)
        if not isinstance(spec.loans, int) or spec.loans < 0:
            raise SandboxConfigError(f"fineract tenant {spec.id!r}: loans is {spec.loans!r}")
        return spec

    def today(self) -> date:
        """The tenant's business date (Fineract validates dates in the tenant's zone)."""
        return datetime.now(ZoneInfo(self.timezone)).date()

    @property
    def has_status_filter(self) -> bool:
        """`status` exists from 1.9.0; older servers take `sqlSearch` (removed in 1.9)."""
        major, minor = (int(part) for part in self.version.split(".")[:2])
        return (major, minor) >= (1, 9)


def _api_error(
    status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None
) -> JSONResponse:
    """Fineract's ApiGlobalErrorResponse (`httpStatusCode` is a string)."""
    return JSONResponse(
        {
            "developerMessage": message,
            "httpStatusCode": str(status),
            "defaultUserMessage": message,
            "userMessageGlobalisationCode": code,
            "errors": errors or [],
        },
        status_code=status,
    )


def _validation_error(code: str, message: str, parameter: str | None = None) -> JSONResponse:
    item: dict[str, Any] = {
        "developerMessage": message,
        "defaultUserMessage": message,
        "userMessageGlobalisationCode": code,
    }
    if parameter is not None:
        item["parameterName"] = parameter
    return _api_error(
        400,
        "validation.msg.validation.errors.exist",
        "Validation errors exist.",
        [item],
    )


def _spring_error(request: Request, status: int, error: str, message: str) -> JSONResponse:
    """The Spring Boot error body the security filter chain produces (not Fineract's shape)."""
    return JSONResponse(
        {
            "timestamp": datetime.now().isoformat(timespec="milliseconds"),
            "status": status,
            "error": error,
            "message": message,
            "path": request.url.path,
        },
        status_code=status,
        headers={"WWW-Authenticate": REALM},
    )


def _drop_nulls(value: Any) -> Any:
    """Gson without serializeNulls: null fields are omitted, recursively."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _ymd(day: date | None) -> list[int] | None:
    return [day.year, day.month, day.day] if day else None


def _compact_json(value: Any) -> bytes:
    """JSON exactly as starlette's JSONResponse renders it."""
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def _number(amount: Decimal) -> float | int:
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _status(status_id: int) -> dict[str, Any]:
    code, value = STATUS_CODES[status_id]
    return {
        "id": status_id,
        "code": code,
        "value": value,
        "pendingApproval": status_id == 100,
        "waitingForDisbursal": status_id == 200,
        "active": status_id == 300,
        "closedObligationsMet": status_id == 600,
        "closedWrittenOff": False,
        "closedRescheduled": False,
        "closed": status_id >= 600 and status_id != 700,
        "overpaid": status_id == 700,
    }


@dataclass
class _Loan:
    id: int
    client_id: int
    product_id: int
    principal: Decimal
    status_id: int
    submitted_on: date
    approved_on: date | None
    external_id: str | None = None
    disbursed_on: date | None = None
    outstanding: Decimal | None = None
    locked_for: int = 0
    view: dict[str, Any] | None = None  # cached wire form, cleared on change
    # The view serialised for the listing, per `fields=` selection; valid while `view` is the
    # dict it was made from (every change clears `view`).
    wire: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    wire_view: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass
class _Client:
    id: int
    first: str
    last: str
    mobile_no: str | None
    activated_on: date


@dataclass
class _Tenant:
    spec: TenantSpec
    seed: int
    started: float
    loans: dict[int, _Loan] = field(default_factory=dict)
    clients: dict[int, _Client] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    idempotency: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    grown: int = 0
    command_requests: int = 0
    # Faults a partner's server really shows: a totalFilteredRecords that lies, and loans
    # whose fields are written wrong (e.g. a principal of "12,500.00").
    claimed_total: int | None = None
    corrupt_fields: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add_loan(self, status_id: int = 200) -> _Loan:
        index = len(self.loans) + 1
        rng = random.Random(f"{self.seed}:{self.spec.id}:loan:{index}")
        client = self._add_client(index, rng)
        today = self.spec.today()
        approved_on = today - timedelta(days=rng.randint(0, 5))
        product_id, _ = rng.choice(PRODUCTS)
        loan = _Loan(
            id=index,
            client_id=client.id,
            product_id=product_id,
            principal=Decimal(rng.randrange(1000, 50001, 500)),
            status_id=status_id,
            submitted_on=approved_on - timedelta(days=1),
            approved_on=approved_on if status_id >= 200 else None,
            external_id=f"LN-{self.spec.id.upper()}-{index:05d}" if index % 3 else None,
        )
        if status_id == 300:
            loan.disbursed_on = approved_on
            loan.outstanding = loan.principal
        self.loans[loan.id] = loan
        self.loan_view(loan)  # rendered once up front, as a real server has its data ready
        return loan

    def _add_client(self, index: int, rng: random.Random) -> _Client:
        every = self.spec.invalid_phone_every
        if every and index % every == 0:
            mobile = (None, "12345", "0812 345 678", "+1 415 555 0100")[(index // every) % 4]
        else:
            subscriber = rng.randrange(10_000_000, 99_999_999)
            prefix = rng.choice(("7", "7", "7", "1"))
            mobile = rng.choice(
                (
                    f"0{prefix}{subscriber}",
                    f"+254{prefix}{subscriber}",
                    f"254{prefix}{subscriber}",
                    f"{prefix}{subscriber}",
                    f"0{prefix}{str(subscriber)[:2]} {str(subscriber)[2:5]} {str(subscriber)[5:]}",
                )
            )
        client = _Client(
            id=index,
            first=rng.choice(FIRST_NAMES),
            last=rng.choice(LAST_NAMES),
            mobile_no=mobile,
            activated_on=self.spec.today() - timedelta(days=rng.randint(30, 400)),
        )
        self.clients[client.id] = client
        return client

    def grow(self, now: float) -> None:
        """New approved loans appear at `new_loans_per_minute` since the tenant was created."""
        rate = self.spec.new_loans_per_minute
        if rate <= 0:
            return
        due = int((now - self.started) * rate / 60)
        while self.grown < due:
            self.add_loan(200)
            self.grown += 1

    def loan_view(self, loan: _Loan) -> dict[str, Any]:
        if loan.view is None:
            client = self.clients[loan.client_id]
            product_name = dict(PRODUCTS)[loan.product_id]
            principal = _number(loan.principal)
            view: dict[str, Any] = {
                "id": loan.id,
                "accountNo": f"{loan.id:09d}",
                "externalId": loan.external_id,
                "status": _status(loan.status_id),
                "clientId": client.id,
                "clientAccountNo": f"{client.id:09d}",
                "clientName": f"{client.first} {client.last}",
                "clientOfficeId": 1,
                "loanProductId": loan.product_id,
                "loanProductName": product_name,
                "loanType": {"id": 1, "code": "accountType.individual", "value": "Individual"},
                "currency": {
                    "code": self.spec.currency,
                    "name": "Kenyan Shilling",
                    "decimalPlaces": 2,
                    "inMultiplesOf": 1,
                    "displaySymbol": "KSh",
                    "nameCode": f"currency.{self.spec.currency}",
                    "displayLabel": "Kenyan Shilling (KSh)",
                },
                "principal": principal,
                "approvedPrincipal": principal if loan.approved_on else None,
                "proposedPrincipal": principal,
                "netDisbursalAmount": principal,
                "timeline": {
                    "submittedOnDate": _ymd(loan.submitted_on),
                    "submittedByUsername": self.spec.username,
                    "approvedOnDate": _ymd(loan.approved_on),
                    "approvedByUsername": self.spec.username if loan.approved_on else None,
                    "expectedDisbursementDate": _ymd(
                        loan.approved_on + timedelta(days=1) if loan.approved_on else None
                    ),
                    "actualDisbursementDate": _ymd(loan.disbursed_on),
                },
                "inArrears": False,
            }
            if loan.status_id >= 300:
                outstanding = loan.outstanding or Decimal(0)
                view["summary"] = {
                    "currency": view["currency"],
                    "principalDisbursed": principal,
                    "principalOutstanding": _number(max(outstanding, Decimal(0))),
                    "totalOutstanding": _number(max(outstanding, Decimal(0))),
                    "totalRepayment": _number(loan.principal - outstanding),
                }
            loan.view = _drop_nulls(view)
        return loan.view

    def loan_wire(self, loan: _Loan, fields: str) -> bytes:
        """The loan as a listing sends it (only the named top-level fields when `fields` is
        given), serialised once per change of the loan: a listing is served far more often than
        a loan changes. A loan with corrupted fields (a fault) is serialised every time."""
        view = self.loan_view(loan)
        corrupt = self.corrupt_fields.get(loan.id)
        if corrupt is None and loan.wire_view is view and fields in loan.wire:
            return loan.wire[fields]
        item = {**view, **corrupt} if corrupt else view
        if fields:  # partial response: only the named top-level fields
            wanted = [name.strip() for name in fields.split(",")]
            item = {k: item[k] for k in wanted if k in item}
        body = _compact_json(item)
        if corrupt is None:
            if loan.wire_view is not view:
                loan.wire, loan.wire_view = {}, view
            loan.wire[fields] = body
        return body


class FineractSandbox(ProviderSandbox):
    name = "fineract"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        unknown = set(options) - {"tenants", "seed"}
        if unknown:
            raise SandboxConfigError(f"fineract: unknown option(s) {sorted(unknown)}")
        self._processing_delay = 0.0
        self.reset()

    # --- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        self.seed = int(self.options.get("seed", 42))
        self._processing_delay = 0.0
        self.tenants: dict[str, _Tenant] = {}
        for raw in self.options.get("tenants", DEFAULT_TENANTS):
            self._add_tenant(TenantSpec.from_dict(raw))

    def _add_tenant(self, spec: TenantSpec) -> None:
        tenant = _Tenant(spec=spec, seed=self.seed, started=time.monotonic())
        for _ in range(spec.loans):
            tenant.add_loan(200)
        for _ in range(spec.loans // 5):
            tenant.add_loan(100)
        for _ in range(spec.loans // 5):
            tenant.add_loan(300)
        self.tenants[spec.id] = tenant

    def configure(self, body: dict) -> None:
        if not isinstance(body, dict) or not body:
            raise SandboxConfigError("fineract configure body must be a non-empty object")
        known = {
            "tenants", "add_tenants", "add_loans", "lock_loans", "processing_delay_ms",
            "claim_total", "corrupt_loans", "invalid_phones",
        }  # fmt: skip
        unknown = set(body) - known
        if unknown:
            raise SandboxConfigError(f"fineract configure: unknown key(s) {sorted(unknown)}")
        if "tenants" in body:
            self.tenants = {}
        for raw in body.get("tenants", []) + body.get("add_tenants", []):
            self._add_tenant(TenantSpec.from_dict(raw))
        if "add_loans" in body:
            spec = body["add_loans"]
            tenant = self._configured_tenant(spec)
            for _ in range(int(spec.get("count", 1))):
                tenant.add_loan(int(spec.get("status", 200)))
        if "lock_loans" in body:
            spec = body["lock_loans"]
            tenant = self._configured_tenant(spec)
            for loan_id in spec.get("loan_ids", []):
                if loan_id not in tenant.loans:
                    raise SandboxConfigError(
                        f"fineract tenant {tenant.spec.id!r}: no loan {loan_id}"
                    )
                tenant.loans[loan_id].locked_for = int(spec.get("times", 1))
        if "processing_delay_ms" in body:
            self._processing_delay = int(body["processing_delay_ms"]) / 1000
        if "invalid_phones" in body:  # from now on, every N-th new client's phone is unusable
            spec = body["invalid_phones"]
            tenant = self._configured_tenant(spec)
            tenant.spec = dataclasses.replace(tenant.spec, invalid_phone_every=int(spec["every"]))
        if "claim_total" in body:
            spec = body["claim_total"]
            total = spec.get("total")
            self._configured_tenant(spec).claimed_total = None if total is None else int(total)
        if "corrupt_loans" in body:
            spec = body["corrupt_loans"]
            tenant = self._configured_tenant(spec)
            for loan_id in spec.get("loan_ids", []):
                if loan_id not in tenant.loans:
                    raise SandboxConfigError(
                        f"fineract tenant {tenant.spec.id!r}: no loan {loan_id}"
                    )
                tenant.corrupt_fields.setdefault(loan_id, {})[spec["field"]] = spec["value"]

    def _configured_tenant(self, spec: object) -> _Tenant:
        tenant_id = spec.get("tenant") if isinstance(spec, dict) else None
        if tenant_id not in self.tenants:
            raise SandboxConfigError(f"fineract: unknown tenant {tenant_id!r} in {spec!r}")
        return self.tenants[tenant_id]

    def snapshot(self) -> dict:
        result = {}
        for tenant_id, tenant in self.tenants.items():
            tenant.grow(time.monotonic())
            by_status: dict[str, int] = {}
            for loan in tenant.loans.values():
                by_status[str(loan.status_id)] = by_status.get(str(loan.status_id), 0) + 1
            result[tenant_id] = {
                "version": tenant.spec.version,
                "filter": "status" if tenant.spec.has_status_filter else "sqlSearch",
                "loans_by_status": by_status,
                "loans": {
                    str(loan.id): {
                        "status": loan.status_id,
                        "client_id": loan.client_id,
                        "mobile_no": tenant.clients[loan.client_id].mobile_no,
                        "product_id": loan.product_id,
                        "principal": str(loan.principal),
                        "outstanding": str(loan.outstanding)
                        if loan.outstanding is not None
                        else None,
                    }
                    for loan in tenant.loans.values()
                },
                "disbursements": [t for t in tenant.transactions if t["type"] == "disbursement"],
                "repayments": [t for t in tenant.transactions if t["type"] == "repayment"],
                "command_requests": tenant.command_requests,
                "idempotency_keys": len(tenant.idempotency),
            }
        return {"tenants": result}

    # --- request plumbing ----------------------------------------------------------------

    def fault_scope(self, request: Request) -> str | None:
        return request.headers.get(TENANT_HEADER) or request.query_params.get("tenantIdentifier")

    def error_response(self) -> Response:
        return _api_error(
            500,
            "error.msg.platform.server.side.error",
            "An unexpected error occurred on the platform server.",
        )

    def rate_limited_response(self) -> Response:
        # Fineract has no limiter; this is what a throttling proxy in front of it answers.
        return _api_error(429, "error.msg.too.many.requests", "Too many requests.")

    def _authenticate(self, request: Request, write: bool) -> _Tenant | Response:
        tenant_id = self.fault_scope(request)
        if not tenant_id:
            return _spring_error(
                request,
                400,
                "Bad Request",
                f"No tenant identifier found: Add request header of '{TENANT_HEADER}' or add "
                "the parameter 'tenantIdentifier' to query string of request URL.",
            )
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            return _api_error(
                400,
                "error.msg.invalid.tenant.identifier",
                f"The tenant identifier: {tenant_id} is invalid.",
            )
        username, password = _basic_credentials(request)
        spec = tenant.spec
        read_only = spec.read_only_users.get(username or "") == password and password is not None
        if not read_only and (username != spec.username or password != spec.password):
            return _spring_error(request, 401, "Unauthorized", "Unauthorized")
        if write and read_only:
            return _api_error(
                403,
                "error.msg.not.authorized",
                f"User has no authority to: {request.query_params.get('command', 'write')}",
            )
        tenant.grow(time.monotonic())
        return tenant

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{API}/loans", self.list_loans, methods=["GET"]),
            Route(f"{API}/loans/{{loan_id}}", self.get_loan, methods=["GET"]),
            Route(f"{API}/loans/{{loan_id}}", self.loan_command, methods=["POST"]),
            Route(
                f"{API}/loans/{{loan_id}}/transactions", self.transaction_command, methods=["POST"]
            ),
            Route(f"{API}/clients/{{client_id}}", self.get_client, methods=["GET"]),
        ]

    # --- reads ---------------------------------------------------------------------------

    async def list_loans(self, request: Request) -> Response:
        tenant = self._authenticate(request, write=False)
        if isinstance(tenant, Response):
            return tenant
        query = request.query_params
        loans = list(tenant.loans.values())
        status_filter: int | None = None
        if tenant.spec.has_status_filter and query.get("status"):
            try:
                status_filter = int(query["status"])
            except ValueError:
                return _validation_error(
                    "validation.msg.invalid.integer.format",
                    f"The parameter status has value {query['status']} which is invalid integer.",
                    "status",
                )
        if not tenant.spec.has_status_filter and query.get("sqlSearch"):
            match = SQL_SEARCH.match(query["sqlSearch"])
            if match is None:
                return _api_error(
                    403,
                    "error.msg.found.sql.injection",
                    "Unexpected SQL Commands found",
                )
            status_filter = int(match.group(1))
        if status_filter is not None:
            loans = [loan for loan in loans if loan.status_id == status_filter]
        if query.get("externalId"):
            loans = [loan for loan in loans if loan.external_id == query["externalId"]]
        if query.get("accountNo"):
            loans = [loan for loan in loans if f"{loan.id:09d}" == query["accountNo"]]
        order_by = query.get("orderBy")
        if order_by:
            if order_by not in SORTABLE:
                return _api_error(
                    400, "error.msg.invalid.orderBy", f"orderBy {order_by!r} is not allowed"
                )
            key = {
                "id": lambda x: x.id,
                "accountNo": lambda x: x.id,
                "principal": lambda x: x.principal,
            }
            loans.sort(key=key[order_by], reverse=query.get("sortOrder", "ASC").upper() == "DESC")
        total = len(loans) if tenant.claimed_total is None else tenant.claimed_total
        limit = _int_or_none(query.get("limit"))
        if limit is not None and limit > 0:
            offset = max(0, _int_or_none(query.get("offset")) or 0)
            loans = loans[offset : offset + limit]
        fields = query.get("fields") or ""
        items = b",".join([tenant.loan_wire(loan, fields) for loan in loans])
        body = b'{"totalFilteredRecords":%d,"pageItems":[%s]}' % (total, items)
        return Response(body, media_type="application/json")

    async def get_loan(self, request: Request) -> Response:
        tenant = self._authenticate(request, write=False)
        if isinstance(tenant, Response):
            return tenant
        loan = _find_loan(tenant, request.path_params["loan_id"])
        if isinstance(loan, Response):
            return loan
        view = dict(tenant.loan_view(loan))
        view["delinquent"] = {"pastDueDays": 0, "delinquentDays": 0, "delinquentAmount": 0}
        associations = request.query_params.get("associations", "")
        if "transactions" in {name.strip() for name in associations.split(",")}:
            view["transactions"] = [
                _drop_nulls(
                    {
                        "id": t["id"],
                        "type": {
                            "id": 1 if t["type"] == "disbursement" else 2,
                            "code": f"loanTransactionType.{t['type']}",
                            "value": t["type"].title(),
                            t["type"]: True,
                        },
                        "date": [int(part) for part in t["date"].split("-")],
                        "amount": _number(Decimal(t["amount"])),
                        "externalId": t["externalId"],
                        "receiptNumber": t["receiptNumber"],
                    }
                )
                for t in tenant.transactions
                if t["loan_id"] == loan.id
            ]
        return JSONResponse(view)

    async def get_client(self, request: Request) -> Response:
        tenant = self._authenticate(request, write=False)
        if isinstance(tenant, Response):
            return tenant
        try:
            client = tenant.clients[int(request.path_params["client_id"])]
        except (KeyError, ValueError):
            return _api_error(
                404,
                "error.msg.client.id.invalid",
                f"Client with identifier {request.path_params['client_id']} does not exist",
            )
        return JSONResponse(
            _drop_nulls(
                {
                    "id": client.id,
                    "accountNo": f"{client.id:09d}",
                    "status": {"id": 300, "code": "clientStatusType.active", "value": "Active"},
                    "active": True,
                    "activationDate": _ymd(client.activated_on),
                    "firstname": client.first,
                    "lastname": client.last,
                    "displayName": f"{client.first} {client.last}",
                    "mobileNo": client.mobile_no,
                    "officeId": 1,
                    "officeName": "Head Office",
                }
            )
        )

    # --- commands ------------------------------------------------------------------------

    async def loan_command(self, request: Request) -> Response:
        command = request.query_params.get("command")
        if command != "disburse":
            return _api_error(
                400,
                "error.msg.command.unsupported",
                f"Unrecognized query param 'command' with value {command!r}",
            )
        return await self._command(request, "DISBURSE", self._disburse)

    async def transaction_command(self, request: Request) -> Response:
        command = request.query_params.get("command")
        if command != "repayment":
            return _api_error(
                400,
                "error.msg.command.unsupported",
                f"Unrecognized query param 'command' with value {command!r}",
            )
        return await self._command(request, "REPAYMENT", self._repayment)

    async def _command(self, request: Request, action: str, handler) -> Response:
        tenant = self._authenticate(request, write=True)
        if isinstance(tenant, Response):
            return tenant
        tenant.command_requests += 1
        key = request.headers.get("Idempotency-Key")
        scope = (action, "LOAN", key) if key and tenant.spec.has_status_filter else None
        if scope is not None and scope in tenant.idempotency:
            stored = tenant.idempotency[scope]
            if stored["state"] == "processing":
                return _api_error(
                    425,
                    "error.msg.idempotent.request.in.progress",
                    f"Idempotent request with key {key} is still being processed",
                )
            return JSONResponse(
                stored["body"],
                status_code=stored["status"],
                headers={"x-served-from-cache": "true"},
            )
        loan = _find_loan(tenant, request.path_params["loan_id"])
        if isinstance(loan, Response):
            return loan
        if loan.locked_for > 0:
            loan.locked_for -= 1
            return _api_error(
                409,
                "error.msg.loan.locked",
                f"Loan is locked by the COB job. Loan ID: {loan.id}",
            )
        if scope is not None:
            tenant.idempotency[scope] = {"state": "processing"}
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            response = _api_error(400, "error.msg.invalid.json", "The request body is not JSON.")
        else:
            if self._processing_delay:
                await asyncio.sleep(self._processing_delay)
            response = handler(tenant, loan, body)
        if scope is not None:
            tenant.idempotency[scope] = {
                "state": "done",
                "status": response.status_code,
                "body": json.loads(response.body),
            }
        return response

    def _disburse(self, tenant: _Tenant, loan: _Loan, body: dict[str, Any]) -> Response:
        problem = _unsupported(body, DISBURSE_KEYS)
        if problem is not None:
            return problem
        on = _command_date(body, "actualDisbursementDate", "disbursement")
        if isinstance(on, Response):
            return on
        if loan.status_id != 200:
            return _validation_error(
                "error.msg.loan.disbursal.account.is.not.approve.not.disbursed.state",
                "Loan Disbursal is not allowed. Loan Account is not in approved and not "
                "disbursed state.",
            )
        if on > tenant.spec.today():
            return _validation_error(
                "error.msg.loan.disbursal.cannot.be.a.future.date",
                "The date on which a loan is disbursed cannot be in the future.",
                "actualDisbursementDate",
            )
        if loan.approved_on and on < loan.approved_on:
            return _validation_error(
                "error.msg.loan.disbursal.cannot.be.before.approval.date",
                "The date on which a loan is disbursed cannot be before its approval date.",
                "actualDisbursementDate",
            )
        amount = loan.principal
        if body.get("transactionAmount") is not None:
            amount = _amount(body["transactionAmount"])
            if amount is None or amount <= 0 or amount > loan.principal:
                return _validation_error(
                    "error.msg.loan.disbursal.amount.invalid",
                    f"transactionAmount {body['transactionAmount']!r} is not within the approved "
                    "principal",
                    "transactionAmount",
                )
        duplicate = _duplicate_external_id(tenant, body.get("externalId"))
        if duplicate is not None:
            return duplicate
        transaction = self._record(tenant, loan, "disbursement", amount, on, body)
        loan.status_id = 300
        loan.disbursed_on = on
        loan.outstanding = amount
        loan.view = None
        return JSONResponse(
            _drop_nulls(
                {
                    "officeId": 1,
                    "clientId": loan.client_id,
                    "loanId": loan.id,
                    "resourceId": loan.id,
                    "resourceExternalId": loan.external_id,
                    "subResourceId": transaction["id"],
                    "subResourceExternalId": transaction["externalId"],
                    "changes": {
                        "status": _status(300),
                        "locale": body.get("locale"),
                        "dateFormat": body.get("dateFormat"),
                        "actualDisbursementDate": body["actualDisbursementDate"],
                    },
                }
            )
        )

    def _repayment(self, tenant: _Tenant, loan: _Loan, body: dict[str, Any]) -> Response:
        problem = _unsupported(body, REPAYMENT_KEYS)
        if problem is not None:
            return problem
        parsed = _command_date(body, "transactionDate", "repayment")
        if isinstance(parsed, Response):
            return parsed
        amount = _amount(body.get("transactionAmount"))
        if amount is None or amount <= 0:
            return _validation_error(
                "validation.msg.loan.transaction.transactionAmount.not.greater.than.zero",
                f"The parameter transactionAmount must be greater than 0, got "
                f"{body.get('transactionAmount')!r}.",
                "transactionAmount",
            )
        if loan.status_id not in (300, 700):
            reason = "Loan is not active; repayments are not allowed."
            rule = {
                "userMessageGlobalisationCode": "error.msg.loan.transaction.loan.not.active",
                "defaultUserMessage": reason,
                "developerMessage": reason,
            }
            return _api_error(
                403,
                "validation.msg.domain.rule.violation",
                "Errors contain reason for domain rule violation.",
                [rule],
            )
        duplicate = _duplicate_external_id(tenant, body.get("externalId"))
        if duplicate is not None:
            return duplicate
        transaction = self._record(tenant, loan, "repayment", amount, parsed, body)
        loan.outstanding = (loan.outstanding or Decimal(0)) - amount
        if loan.outstanding == 0:
            loan.status_id = 600
        elif loan.outstanding < 0:
            loan.status_id = 700
        loan.view = None
        return JSONResponse(
            {
                "officeId": 1,
                "clientId": loan.client_id,
                "loanId": loan.id,
                "resourceId": transaction["id"],
                "changes": {
                    "transactionDate": body["transactionDate"],
                    "transactionAmount": str(body["transactionAmount"]),
                    "locale": body.get("locale"),
                    "dateFormat": body.get("dateFormat"),
                },
            }
        )

    @staticmethod
    def _record(
        tenant: _Tenant, loan: _Loan, kind: str, amount: Decimal, on: date, body: dict[str, Any]
    ) -> dict[str, Any]:
        transaction = {
            "id": len(tenant.transactions) + 1,
            "loan_id": loan.id,
            "type": kind,
            "amount": str(amount),
            "date": on.isoformat(),
            "externalId": body.get("externalId"),
            "receiptNumber": body.get("receiptNumber"),
            "note": body.get("note"),
        }
        tenant.transactions.append(transaction)
        return transaction


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        username, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return username, password


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def _amount(raw: object) -> Decimal | None:
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _find_loan(tenant: _Tenant, raw_id: str) -> _Loan | Response:
    try:
        return tenant.loans[int(raw_id)]
    except (KeyError, ValueError):
        return _api_error(
            404, "error.msg.loan.id.invalid", f"Loan with identifier {raw_id} does not exist"
        )


def _unsupported(body: dict[str, Any], allowed: frozenset[str]) -> Response | None:
    for key in body:
        if key not in allowed:
            return _validation_error(
                "error.msg.parameter.unsupported", f"The parameter {key} is not supported.", key
            )
    return None


def _command_date(body: dict[str, Any], key: str, what: str) -> date | Response:
    raw = body.get(key)
    if raw in (None, ""):
        return _validation_error(
            f"validation.msg.loan.{what}.{key}.cannot.be.blank",
            f"The parameter `{key}` is mandatory.",
            key,
        )
    if not body.get("dateFormat"):
        return _validation_error(
            "validation.msg.missing.dateFormat.parameter",
            "The parameter dateFormat is missing.",
            "dateFormat",
        )
    if not body.get("locale"):
        return _validation_error(
            "validation.msg.missing.locale.parameter", "The parameter locale is missing.", "locale"
        )
    pattern = DATE_FORMATS.get(body["dateFormat"])
    try:
        if pattern is None:
            raise ValueError(body["dateFormat"])
        return datetime.strptime(str(raw), pattern).date()
    except ValueError:
        return _validation_error(
            "validation.msg.invalid.date.format",
            f"The parameter {key} is invalid based on the dateFormat: '{body['dateFormat']}' "
            f"and locale: '{body['locale']}' provided:",
            key,
        )


def _duplicate_external_id(tenant: _Tenant, external_id: object) -> Response | None:
    if external_id and any(t["externalId"] == external_id for t in tenant.transactions):
        return _api_error(
            403,
            "error.msg.loan.transaction.duplicate.externalId",
            f"Loan transaction with externalId {external_id} already exists",
        )
    return None
