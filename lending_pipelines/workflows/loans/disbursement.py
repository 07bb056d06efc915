"""M-Pesa loan disbursements: submit, reconcile, retry, record in Fineract.

Every step reads and writes `disbursement_requests` through `db.loans` /
`db.disbursement_attempts` and talks to partners through their own Fineract and Daraja
credentials. The rules that make a double payment impossible (see domain/disbursement.py):

* one submitter at a time (a database lock every submitter takes), each claiming its rows;
* the attempt is committed as `unknown` (with its own row and id) before the B2C call;
* a callback is only a hint: a transaction-status query, answered for the ids of its own
  acknowledgement and matching our ids, amount and receiver, is what settles a request;
* a new attempt id is minted only after a confirmed failure; the same id is sent again only
  after two not-found answers some time apart.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ...crypto import SecretBox
from ...db import disbursement_attempts as attempts_db
from ...db import disbursement_results as results_db
from ...db import loans as loans_db
from ...db.loans import OpenDisbursement, Partner
from ...domain.disbursement import (
    DisbursementRuleError,
    b2c_amount,
    next_attempt_at,
    originator_conversation_id,
)
from ...domain.phone import InvalidPhoneError, normalise_msisdn
from ...partners.fineract import FineractClient, FineractClients, FineractError, LoanStatusId
from ...partners.mpesa import (
    MpesaAuthError,
    MpesaClient,
    MpesaClients,
    MpesaDuplicateRequestError,
    MpesaError,
    MpesaFinalError,
)
from .fineract_record import record_in_fineract
from .results import CallbackReport, apply_callbacks
from .rules import DisbursementRules

log = logging.getLogger(__name__)


class DisbursementConfigError(RuntimeError):
    """The workflow cannot send payments safely as configured (e.g. no callback URL)."""


def _jitter(request_id: int) -> float:
    """A stable number in [0, 1) per request, spreading retries without randomness in tests."""
    return (request_id * 0.6180339887498949) % 1


@dataclass
class Disburser:
    engine: sa.Engine
    box: SecretBox
    fineract: FineractClients
    mpesa: MpesaClients
    rules: DisbursementRules
    run_id: str | None = None
    # Problems a person must look at (one per incident), for the caller to alert on.
    alarms: list[str] = field(default_factory=list)
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
            base_seconds=self.rules.backoff_seconds,
            cap_seconds=self.rules.backoff_seconds * 64,
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
        """Send every due pending request (new, deferred, or a resend M-Pesa twice reported
        not found). Every submitter — the polling job's asset, the retry job, a "Materialize"
        from the UI — holds the database's submitter lock while it sends and claims its rows,
        so two of them never send for the same request nor charge a wallet twice."""
        counts: Counter[str] = Counter()
        with self.engine.connect() as session:
            if not attempts_db.has_due_submissions(session, datetime.now(UTC)):
                session.commit()
                return counts
            session.commit()
            if not self.mpesa.callback_urls()[0]:
                raise DisbursementConfigError(
                    "no M-Pesa ResultURL configured (LENDING_WEBHOOKS_URL + "
                    "LENDING_MPESA_CALLBACK_TOKEN): results could never arrive, nothing is sent"
                )
            if not attempts_db.try_lock_submitter(session, self.rules.submitter_wait_seconds):
                counts["submitter_busy"] += 1
                return counts
            try:
                with session.begin():
                    claims = attempts_db.due_submissions(session, datetime.now(UTC), limit)
                partners = self._partners(claim.request.partner_id for claim in claims)
                for claim in claims:
                    counts[self._submit(claim, partners[claim.request.partner_id])] += 1
            finally:
                try:
                    session.rollback()
                    with session.begin():
                        attempts_db.release_claims(session)
                    attempts_db.unlock_submitter(session)
                except Exception:
                    # Never hand a connection that may still hold the lock back to the pool:
                    # closing it ends the session, which releases the lock and its claims.
                    session.invalidate()
                    raise
        return counts

    def _prepare(self, request: OpenDisbursement, partner: Partner) -> tuple[str, str | None] | str:
        """The loan must still be approved in Fineract, and for a new attempt the borrower's
        phone must be payable (a resend keeps the attempt's phone). Returns (phone, raw phone)
        or the outcome that ends here."""
        loan_id = request.fineract_loan_id
        try:
            fineract = self._fineract_for(partner)
            loan = fineract.get_loan(loan_id)
            if loan.status.id != LoanStatusId.APPROVED:
                reason = f"loan {loan_id} is {loan.status.value!r} in Fineract, no longer approved"
                self._fail(request.id, f"{reason}; nothing sent")
                return "not_approved"
            if request.originator_conversation_id is not None and request.phone:
                return request.phone, None
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

    def _submit(self, claim: attempts_db.Claim, partner: Partner) -> str:
        request = claim.request
        if claim.wallet_short:
            self._fail(
                request.id,
                f"partner {partner.id!r} wallet cannot cover the disbursement charge; nothing sent",
                retryable=True,
                count_attempt=True,
            )
            return "wallet_short"
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
        try:  # a token now: an OAuth failure must happen before the attempt, not after it
            self._mpesa_for(partner).access_token()
        except MpesaError as exc:
            self._defer(request.id, str(exc))
            return "deferred"
        ocid = request.originator_conversation_id or originator_conversation_id(
            partner.id, request.fineract_loan_id, request.tranche, request.attempts + 1
        )
        with self.engine.begin() as conn:
            started = attempts_db.begin_attempt(
                conn,
                claim,
                originator_conversation_id=ocid,
                phone=phone,
                phone_raw=phone_raw,
                run_id=self.run_id,
            )
        if started != "started":
            return started
        return self._send(request, partner, ocid, phone, amount)

    def _send(
        self, request: OpenDisbursement, partner: Partner, ocid: str, phone: str, amount: int
    ) -> str:
        """The attempt is committed as `unknown`; only an acknowledgement makes it `submitted`,
        only a request Daraja refused as invalid makes it `failed`. Anything else (timeout, 5xx,
        an incomplete acknowledgement, a duplicate refusal) stays `unknown` for a status query."""
        try:
            ack = self._mpesa_for(partner).b2c_payment(
                originator_conversation_id=ocid,
                phone=phone,
                amount=amount,
                occasion=f"{partner.id}-loan-{request.fineract_loan_id}",
            )
        except MpesaDuplicateRequestError as exc:
            outcome, reason = "already_sent", str(exc)
        except MpesaAuthError as exc:
            outcome, reason = "unknown", str(exc)
        except MpesaFinalError as exc:
            self._fail(request.id, str(exc), from_statuses=("unknown",))
            with self.engine.begin() as conn:
                attempts_db.refused(conn, ocid, exc.error_code)
            return "rejected"
        except MpesaError as exc:
            outcome, reason = "unknown", str(exc)
        else:
            with self.engine.begin() as conn:
                attempts_db.record_acknowledgement(conn, request.id, ocid, ack.conversation_id)
            return "submitted"
        with self.engine.begin() as conn:
            attempts_db.note_unknown(conn, request.id, ocid, reason)
        return outcome

    # --- results -------------------------------------------------------------------------

    def apply_callbacks(self, limit: int = 500) -> CallbackReport:
        """Apply stored M-Pesa callbacks (see results.py): hints and confirmed answers."""
        return apply_callbacks(
            self.engine, self.rules.not_found_gap_minutes, run_id=self.run_id, limit=limit
        )

    # --- reconciliation and retries ------------------------------------------------------

    def reconcile(self, *, hinted_only: bool = False, limit: int = 500) -> Counter[str]:
        """Ask M-Pesa about open requests a callback hinted at and (unless `hinted_only`) those
        without an answer in time. Never sends a payment."""
        cutoff = datetime.now(UTC) - timedelta(minutes=self.rules.reconcile_after_minutes)
        with self.engine.begin() as conn:
            due = results_db.due_reconciliations(conn, cutoff, hinted_only=hinted_only, limit=limit)
        counts: Counter[str] = Counter()
        if not due:
            return counts
        partners = self._partners(request.partner_id for request in due)
        for request in due:
            partner = partners[request.partner_id]
            if partner.config_error:  # alerted per partner by the polling step
                log.warning(
                    "status query for request %s skipped: %s", request.id, partner.config_error
                )
                counts["credentials_unreadable"] += 1
                continue
            if partner.mpesa is None:
                counts["no_mpesa_config"] += 1
                continue
            try:
                ack = self._mpesa_for(partner).transaction_status(
                    originator_conversation_id=request.originator_conversation_id
                )
            except MpesaError as exc:
                log.warning("status query for request %s failed: %s", request.id, exc)
                with self.engine.begin() as conn:
                    results_db.mark_status_queried(
                        conn, request, query_conversation_id=None, query_originator_id=None,
                        error=str(exc),
                    )  # fmt: skip
                counts["query_failed"] += 1
                continue
            with self.engine.begin() as conn:
                results_db.mark_status_queried(
                    conn,
                    request,
                    query_conversation_id=ack.conversation_id,
                    query_originator_id=ack.originator_conversation_id,
                )
            counts["queried"] += 1
        return counts

    def retry_failures(self) -> Counter[str]:
        """Known-failed retryable requests whose backoff has passed start a new attempt; those
        that used every attempt stop for good (and are reported)."""
        now = datetime.now(UTC)
        maximum = self.rules.max_attempts
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
            base_seconds=self.rules.backoff_seconds,
            cap_seconds=self.rules.backoff_seconds * 64,
            rand=_jitter(request_id),
        )

    # --- Fineract ------------------------------------------------------------------------

    def record_in_fineract(self, limit: int = 500) -> Counter[str]:
        """Record every confirmed, unrecorded disbursement in Fineract (see fineract_record.py)."""
        return record_in_fineract(self, limit)
