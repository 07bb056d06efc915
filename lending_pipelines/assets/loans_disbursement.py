"""M-Pesa loan disbursements: submit, apply results, reconcile, retry, record in Fineract.

Every step reads and writes `disbursement_requests` through `db.loans` and talks to partners
through their own Fineract and Daraja credentials. The rules that make a double payment
impossible (see domain/disbursement.py):

* the attempt's OriginatorConversationID is committed before the B2C call; a crash between the
  call and the outcome leaves a pending row that is resent with the *same* id;
* a B2C answer that may hide an acceptance (timeout, 5xx) makes the request `unknown`; it is
  resolved by a transaction-status query, never by a resend with a new id;
* a new id is minted only after the previous attempt is known failed (a result, or a status
  query that found the failed payment).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..crypto import SecretBox
from ..db import inbound
from ..db import loans as loans_db
from ..db.loans import OpenDisbursement, Partner, ResultOutcome
from ..domain.disbursement import (
    DisbursementRuleError,
    b2c_amount,
    classify_result,
    next_attempt_at,
    originator_conversation_id,
    status_query_outcome,
)
from ..domain.phone import InvalidPhoneError, normalise_msisdn
from ..resources.fineract import FineractClient, FineractError, FineractResource, LoanStatusId
from ..resources.mpesa import (
    MpesaAuthError,
    MpesaClient,
    MpesaDuplicateRequestError,
    MpesaError,
    MpesaFinalError,
    MpesaOutcomeUnknownError,
    MpesaPayloadError,
    MpesaResource,
    MpesaResult,
    MpesaRetryableError,
    parse_result_callback,
)
from ..settings import Settings

log = logging.getLogger(__name__)

NOT_DISBURSABLE = "error.msg.loan.disbursal.account.is.not.approve.not.disbursed.state"


class DisbursementConfigError(RuntimeError):
    """The workflow cannot send payments safely as configured (e.g. no callback URL)."""


def _jitter(request_id: int) -> float:
    """A stable number in [0, 1) per request, spreading retries without randomness in tests."""
    return (request_id * 0.6180339887498949) % 1


@dataclass(frozen=True)
class CallbackReport:
    applied: Counter[str]
    ignored: int
    errors: dict[int, str]
    # A success M-Pesa reports for a request we do not hold open as paid: needs a person.
    alarming: list[str] = field(default_factory=list)


@dataclass
class Disburser:
    engine: sa.Engine
    box: SecretBox
    fineract: FineractResource
    mpesa: MpesaResource
    settings: Settings
    run_id: str | None = None
    _fineract_clients: dict[str, FineractClient] = field(default_factory=dict, repr=False)
    _mpesa_clients: dict[str, MpesaClient] = field(default_factory=dict, repr=False)

    # --- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        for client in [*self._fineract_clients.values(), *self._mpesa_clients.values()]:
            client.close()
        self._fineract_clients.clear()
        self._mpesa_clients.clear()

    def __enter__(self) -> Disburser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _partners(self, ids: Iterable[str]) -> dict[str, Partner]:
        with self.engine.begin() as conn:
            return loans_db.partners_by_id(conn, self.box, ids)

    def _fineract_for(self, partner: Partner) -> FineractClient:
        if partner.id not in self._fineract_clients:
            self._fineract_clients[partner.id] = self.fineract.client_for(
                base_url=partner.fineract_base_url,
                tenant_id=partner.fineract_tenant_id,
                username=partner.fineract_username,
                password=partner.fineract_password,
                filter_mode=partner.fineract_filter_mode,
            )
        return self._fineract_clients[partner.id]

    def _mpesa_for(self, partner: Partner) -> MpesaClient:
        if partner.id not in self._mpesa_clients:
            creds = partner.mpesa
            self._mpesa_clients[partner.id] = self.mpesa.client_for(
                consumer_key=creds.consumer_key,
                consumer_secret=creds.consumer_secret,
                shortcode=creds.shortcode,
                initiator_name=creds.initiator_name,
                security_credential=creds.security_credential,
                base_url=creds.base_url,
            )
        return self._mpesa_clients[partner.id]

    def _later(self, attempts: int, request_id: int) -> datetime:
        return next_attempt_at(
            datetime.now(UTC),
            attempts,
            base_seconds=self.settings.disbursement_backoff_seconds,
            cap_seconds=self.settings.disbursement_backoff_seconds * 64,
            rand=_jitter(request_id),
        )

    def _fail(self, request_id: int, reason: str, *, retryable: bool = False, **extra) -> None:
        with self.engine.begin() as conn:
            loans_db.mark_failed(
                conn, request_id, reason=reason, retryable=retryable, run_id=self.run_id, **extra
            )

    def _defer(self, request_id: int, reason: str) -> None:
        with self.engine.begin() as conn:
            loans_db.defer(conn, request_id, reason, self._later(1, request_id))

    # --- submission ----------------------------------------------------------------------

    def submit_due(self, limit: int = 500) -> Counter[str]:
        """Send every due pending request (new, deferred, or started-but-unrecorded)."""
        with self.engine.begin() as conn:
            due = loans_db.due_submissions(conn, datetime.now(UTC), limit)
        counts: Counter[str] = Counter()
        if not due:
            return counts
        if not self.mpesa.callback_urls()[0]:
            raise DisbursementConfigError(
                "no M-Pesa ResultURL configured (LENDING_WEBHOOKS_URL + "
                "LENDING_MPESA_CALLBACK_TOKEN): results could never arrive, nothing is sent"
            )
        partners = self._partners(request.partner_id for request in due)
        for request in due:
            counts[self._submit(request, partners[request.partner_id])] += 1
        return counts

    def _prepare(self, request: OpenDisbursement, partner: Partner) -> tuple[str, str | None] | str:
        """For a new attempt: the loan must still be approved in Fineract, and the borrower's
        phone must be payable. Returns (phone, raw phone) or the outcome that ends here."""
        if request.attempt_started_at is not None:
            return request.phone or "", None
        loan_id = request.fineract_loan_id
        try:
            fineract = self._fineract_for(partner)
            loan = fineract.get_loan(loan_id)
            if loan.status.id != LoanStatusId.APPROVED:
                reason = f"loan {loan_id} is {loan.status.value!r} in Fineract, no longer approved"
                self._fail(request.id, f"{reason}; nothing sent")
                return "not_approved"
            client_id = loan.client_id or request.client_id
            if client_id is None:
                self._fail(request.id, f"loan {loan_id} has no client (no phone); nothing sent")
                return "rejected"
            borrower = fineract.get_borrower(client_id)
        except FineractError as exc:
            if exc.retryable or exc.status_code in (401, 403):  # may heal: try again later
                self._defer(request.id, str(exc))
                return "deferred"
            self._fail(request.id, str(exc))
            return "rejected"
        try:
            return normalise_msisdn(borrower.mobile_no), borrower.mobile_no
        except InvalidPhoneError as exc:
            self._fail(request.id, f"{exc}; nothing sent", phone_raw=borrower.mobile_no)
            return "invalid_phone"

    def _submit(self, request: OpenDisbursement, partner: Partner) -> str:
        if partner.config_error or partner.mpesa is None:
            self._defer(
                request.id,
                partner.config_error or f"partner {partner.id!r} has no M-Pesa configuration",
            )
            return "deferred"
        try:
            amount = b2c_amount(request.amount_minor, request.currency)
        except DisbursementRuleError as exc:
            self._fail(request.id, f"{exc}; nothing sent")
            return "rejected"
        prepared = self._prepare(request, partner)
        if isinstance(prepared, str):
            return prepared
        phone, phone_raw = prepared
        ocid = request.originator_conversation_id or originator_conversation_id(
            partner.id, request.fineract_loan_id, request.tranche, request.attempts + 1
        )
        with self.engine.begin() as conn:
            started = loans_db.begin_attempt(
                conn,
                request,
                originator_conversation_id=ocid,
                phone=phone,
                phone_raw=phone_raw,
                run_id=self.run_id,
            )
        if started == "wallet_short":
            self._fail(
                request.id,
                f"partner {partner.id!r} wallet cannot cover the disbursement charge; nothing sent",
                retryable=True,
                count_attempt=True,
                phone_raw=phone_raw,
            )
        if started != "started":
            return started
        return self._send(request, partner, ocid, phone, amount)

    def _send(
        self, request: OpenDisbursement, partner: Partner, ocid: str, phone: str, amount: int
    ) -> str:
        try:
            ack = self._mpesa_for(partner).b2c_payment(
                originator_conversation_id=ocid,
                phone=phone,
                amount=amount,
                occasion=f"{partner.id}-loan-{request.fineract_loan_id}",
            )
        except MpesaDuplicateRequestError:
            conversation_id, outcome = None, "already_sent"
        except MpesaOutcomeUnknownError as exc:
            with self.engine.begin() as conn:
                loans_db.mark_unknown(conn, request.id, ocid, str(exc))
            return "unknown"
        except (MpesaRetryableError, MpesaAuthError) as exc:  # certainly not sent
            self._defer(request.id, str(exc))
            return "deferred"
        except MpesaFinalError as exc:
            self._fail(request.id, str(exc))
            return "rejected"
        else:
            conversation_id, outcome = ack.conversation_id, "submitted"
        with self.engine.begin() as conn:
            loans_db.mark_submitted(conn, request.id, ocid, conversation_id)
        return outcome

    # --- results -------------------------------------------------------------------------

    @staticmethod
    def _b2c_outcome(result: MpesaResult) -> ResultOutcome:
        if result.succeeded:
            return ResultOutcome(
                status="succeeded",
                match_ocid=result.originator_conversation_id,
                conversation_id=result.conversation_id,
                mpesa_transaction_id=result.receipt,
                result_code=result.result_code,
                result_desc=result.result_desc,
            )
        verdict = classify_result(result.result_code, result.result_desc)
        return ResultOutcome(
            status="failed",
            match_ocid=result.originator_conversation_id,
            conversation_id=result.conversation_id,
            result_code=result.result_code,
            result_desc=result.result_desc,
            failure_reason=verdict.reason,
            retryable=verdict.retryable,
        )

    @staticmethod
    def _query_outcome(result: MpesaResult) -> ResultOutcome | None:
        """A transaction-status answer. It names the queried payment by the parameters'
        OriginatorConversationID (or the Occasion we sent) and by the query's ConversationID."""
        keys = {
            "match_ocid": result.queried_originator_conversation_id,
            "match_query_conversation_id": result.conversation_id,
        }
        if not result.succeeded:
            # Nothing found: M-Pesa never took the attempt, or not yet. Resending the same
            # OriginatorConversationID is safe either way (a duplicate is refused).
            return ResultOutcome(status="pending", **keys)
        verdict_status = status_query_outcome(result.transaction_status)
        if verdict_status == "succeeded":
            return ResultOutcome(
                status="succeeded",
                mpesa_transaction_id=result.receipt,
                result_code="0",
                result_desc=f"status query: {result.transaction_status}",
                **keys,
            )
        if verdict_status == "failed":
            code = str(result.parameters.get("TransactionReason") or "").strip()
            reason_text = str(result.parameters.get("ReasonType") or result.transaction_status)
            verdict = classify_result(code or "status_query", reason_text)
            return ResultOutcome(
                status="failed",
                result_code=code or None,
                result_desc=reason_text,
                failure_reason=verdict.reason,
                retryable=verdict.retryable,
                **keys,
            )
        return None  # still in flight: the next reconciliation asks again

    def apply_callbacks(self, limit: int = 500) -> CallbackReport:
        """Apply stored M-Pesa callbacks in one transaction: the events stay locked until their
        effect is committed, so each applies exactly once.

        A result with `TransactionStatus` answers a status query. Any other result is first
        applied as a B2C result (matched by our OriginatorConversationID); a failed one without
        parameters that matches nothing may be a status query that found nothing, and is then
        applied as that (matched by the query's ConversationID or the Occasion we sent)."""
        applied: Counter[str] = Counter()
        processed: dict[int, str | None] = {}
        alarming: list[str] = []
        with self.engine.begin() as conn:
            events = inbound.unprocessed_events(conn, "mpesa", limit=limit)
            as_b2c: list[tuple[int, ResultOutcome]] = []
            as_query: list[tuple[int, ResultOutcome]] = []
            for event in events:
                processed[event.id] = None
                if (event.event_type or "").startswith("mpesa.timeout"):
                    continue  # QueueTimeOut notice: reconciliation will ask
                try:
                    result = parse_result_callback(event.payload)
                except MpesaPayloadError as exc:
                    processed[event.id] = str(exc)
                    continue
                if result.is_status_query:
                    outcome = self._query_outcome(result)
                    if outcome is not None:
                        as_query.append((event.id, outcome))
                    continue
                as_b2c.append((event.id, self._b2c_outcome(result)))
                if not result.succeeded and not result.parameters:
                    as_query.append((event.id, self._query_outcome(result)))
            matched: set[int] = set()
            for candidates in (as_b2c, as_query):
                pending = [(e, o) for e, o in candidates if e not in matched]
                by_key = {}
                for event_id, outcome in pending:
                    for key in (outcome.match_ocid, outcome.match_query_conversation_id):
                        if key:
                            by_key.setdefault(key, event_id)
                rows = loans_db.apply_results(conn, [o for _, o in pending], run_id=self.run_id)
                for row in rows:
                    applied[row.status] += 1
                    matched.update(by_key[k] for k in (row.ocid, row.query) if k in by_key)
            unmatched = {e: o for e, o in as_b2c if e not in matched}
            processed.update(self._unmatched(conn, list(unmatched.items()), alarming))
            inbound.mark_outcomes(conn, processed)
        errors = {event_id: error for event_id, error in processed.items() if error}
        return CallbackReport(
            applied=applied,
            ignored=len(processed) - len(errors) - len(matched),
            errors=errors,
            alarming=alarming,
        )

    @staticmethod
    def _unmatched(
        conn: sa.Connection, unmatched: list[tuple[int, ResultOutcome]], alarming: list[str]
    ) -> dict[int, str]:
        """Results that changed nothing: repeats for settled requests are fine; results for
        ids we never sent are errors; a success for a request recorded as failed is alarming."""
        if not unmatched:
            return {}
        known = {}
        for row in loans_db.settled_by_keys(
            conn,
            [o.match_ocid for _, o in unmatched if o.match_ocid],
            [o.match_query_conversation_id for _, o in unmatched if o.match_query_conversation_id],
        ):
            known[row.originator_conversation_id] = row
            if row.status_query_conversation_id:
                known[row.status_query_conversation_id] = row
        errors: dict[int, str] = {}
        for event_id, outcome in unmatched:
            row = known.get(outcome.match_ocid) or known.get(outcome.match_query_conversation_id)
            if row is None:
                errors[event_id] = (
                    f"no disbursement request for OriginatorConversationID {outcome.match_ocid!r}"
                )
                if outcome.status == "succeeded":
                    alarming.append(
                        f"M-Pesa reports payment {outcome.mpesa_transaction_id} for unknown "
                        f"OriginatorConversationID {outcome.match_ocid!r}"
                    )
            elif outcome.status == "succeeded" and row.status == "failed":
                alarming.append(
                    f"M-Pesa reports payment {outcome.mpesa_transaction_id} for disbursement "
                    f"request {row.id}, which is recorded as failed"
                )
        return errors

    # --- reconciliation and retries ------------------------------------------------------

    def reconcile(self, limit: int = 500) -> Counter[str]:
        """Ask M-Pesa about requests with no result in time. Never resends anything."""
        cutoff = datetime.now(UTC) - timedelta(
            minutes=self.settings.disbursement_reconcile_after_minutes
        )
        with self.engine.begin() as conn:
            due = loans_db.due_reconciliations(conn, cutoff, limit)
        counts: Counter[str] = Counter()
        if not due:
            return counts
        partners = self._partners(request.partner_id for request in due)
        for request in due:
            partner = partners[request.partner_id]
            if partner.mpesa is None:
                counts["no_mpesa_config"] += 1
                continue
            try:
                ack = self._mpesa_for(partner).transaction_status(
                    originator_conversation_id=request.originator_conversation_id
                )
            except MpesaError as exc:
                log.warning("status query for request %s failed: %s", request.id, exc)
                counts["query_failed"] += 1
                continue
            with self.engine.begin() as conn:
                loans_db.mark_status_queried(conn, request.id, ack.conversation_id)
            counts["queried"] += 1
        return counts

    def retry_failures(self) -> Counter[str]:
        """Known-failed retryable requests whose backoff has passed start a new attempt; those
        that used every attempt stop for good (and are reported)."""
        now = datetime.now(UTC)
        maximum = self.settings.disbursement_max_attempts
        with self.engine.begin() as conn:
            failures = loans_db.retryable_failures(conn)
            exhausted = [row.id for row in failures if row.attempts >= maximum]
            due = [
                row.id
                for row in failures
                if row.attempts < maximum
                and self._due_again(row.resolved_at or now, row.attempts, row.id) <= now
            ]
            rearmed = loans_db.rearm(conn, due, run_id=self.run_id)
            stopped = loans_db.give_up(conn, exhausted, maximum)
        return Counter({"rearmed": rearmed, "stopped": stopped})

    def _due_again(self, failed_at: datetime, attempts: int, request_id: int) -> datetime:
        return next_attempt_at(
            failed_at,
            attempts,
            base_seconds=self.settings.disbursement_backoff_seconds,
            cap_seconds=self.settings.disbursement_backoff_seconds * 64,
            rand=_jitter(request_id),
        )

    # --- Fineract ------------------------------------------------------------------------

    def record_in_fineract(self, limit: int = 500) -> Counter[str]:
        """Record every paid, unrecorded disbursement in Fineract (disburse command carrying the
        M-Pesa transaction id). The Idempotency-Key makes a repeat a replay; on servers without
        idempotency a repeat finds the loan already active, which counts as recorded."""
        with self.engine.begin() as conn:
            rows = loans_db.succeeded_unrecorded(conn, limit)
        counts: Counter[str] = Counter()
        if not rows:
            return counts
        partners = self._partners(row.partner_id for row in rows)
        today = datetime.now(ZoneInfo(self.settings.loans_timezone)).date()
        for row in rows:
            client = self._fineract_for(partners[row.partner_id])
            try:
                result = client.disburse(
                    row.fineract_loan_id,
                    on=today,
                    reference=row.mpesa_transaction_id,
                    receipt_number=row.mpesa_transaction_id,
                    note=f"Disbursed via M-Pesa B2C, transaction {row.mpesa_transaction_id}",
                )
                transaction_id = result.sub_resource_id
            except FineractError as exc:
                if NOT_DISBURSABLE in exc.error_codes and self._already_active(client, row):
                    transaction_id = None
                else:
                    with self.engine.begin() as conn:
                        loans_db.mark_fineract_error(conn, row.id, str(exc))
                    counts["fineract_error"] += 1
                    continue
            with self.engine.begin() as conn:
                loans_db.mark_recorded_in_fineract(conn, row.id, transaction_id)
            counts["recorded"] += 1
        return counts

    @staticmethod
    def _already_active(client: FineractClient, row: sa.Row) -> bool:
        try:
            return client.get_loan(row.fineract_loan_id).status.id >= LoanStatusId.ACTIVE
        except FineractError:
            return False
