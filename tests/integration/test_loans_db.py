"""Workflow 1's tables and queries on the real PostgreSQL: set-based upserts, encrypted
partner secrets, idempotent request creation, results that never undo a settled outcome."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from lending_pipelines.crypto import EncryptionKeyError, SecretBox
from lending_pipelines.db import disbursement_attempts as attempts_db
from lending_pipelines.db import disbursement_results as results_db
from lending_pipelines.db import loans as loans_db
from lending_pipelines.db.loans import MpesaCredentials, PartnerSetup
from lending_pipelines.resources.fineract import FineractLoan, LoanStatus

BOX = SecretBox(Fernet.generate_key().decode())
MPESA = MpesaCredentials(
    consumer_key="ck", consumer_secret="cs-plain-secret", shortcode="600981",
    initiator_name="testapi", security_credential="sc-plain-credential",
)  # fmt: skip


def partner(conn, partner_id="acme", mpesa=MPESA, **extra):
    loans_db.save_partner(
        conn,
        PartnerSetup(
            id=partner_id, name=partner_id, fineract_base_url="http://f.test",
            fineract_tenant_id=partner_id, fineract_username="mifos",
            fineract_password="fineract-plain-password", mpesa=mpesa, **extra,
        ),
        BOX,
    )  # fmt: skip


def loan(
    loan_id: int, status: int = 200, product: int = 1, principal: str = "5000"
) -> FineractLoan:
    return FineractLoan(
        tenant="t", id=loan_id, account_no=f"{loan_id:09d}",
        status=LoanStatus(status, "code", "Approved" if status == 200 else "Active"),
        currency="KES", principal=Decimal(principal), client_id=loan_id, product_id=product,
        approved_on=date(2024, 10, 2),
    )  # fmt: skip


def count_statements(engine):
    statements: list[str] = []

    def before(conn, cursor, statement, params, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    return statements, lambda: sa.event.remove(engine, "before_cursor_execute", before)


def test_upserting_thousands_of_loans_of_many_partners_is_one_statement(db):
    with db.begin() as conn:
        for n in range(5):
            partner(conn, f"p{n}")
    polled = [(f"p{n}", None, [loan(i) for i in range(1, 1001)]) for n in range(5)]
    statements, stop = count_statements(db)
    try:
        with db.begin() as conn:
            new = loans_db.upsert_tracked_loans(conn, polled)
    finally:
        stop()
    assert new == {f"p{n}": 1000 for n in range(5)}
    assert len([s for s in statements if "loan_tracking" in s]) == 1


def test_a_second_poll_adds_no_row_keeps_first_seen_and_refreshes_status(db):
    with db.begin() as conn:
        partner(conn)
        loans_db.upsert_tracked_loans(conn, [("acme", None, [loan(1), loan(2)])])
    with db.connect() as conn:
        before = {r.fineract_loan_id: r for r in conn.execute(sa.select(loans_db.loan_tracking))}
    with db.begin() as conn:
        new = loans_db.upsert_tracked_loans(
            conn, [("acme", None, [loan(1), loan(2, status=300), loan(3)])]
        )
    with db.connect() as conn:
        after = {r.fineract_loan_id: r for r in conn.execute(sa.select(loans_db.loan_tracking))}
    assert new == {"acme": 1} and sorted(after) == [1, 2, 3]
    assert after[1].first_seen_at == before[1].first_seen_at
    assert after[1].last_seen_at > before[1].last_seen_at
    assert after[2].status_id == 300


def test_poll_attempts_are_opened_and_closed_for_every_partner_at_once(db):
    with db.begin() as conn:
        partner(conn, "a")
        partner(conn, "b")
        attempts = loans_db.start_poll_attempts(conn, ["a", "b"], "run-1")
        loans_db.finish_poll_attempts(
            conn,
            [
                loans_db.PollOutcome(attempts["a"], "a", True, datetime.now(UTC), 10, 3, 1),
                loans_db.PollOutcome(
                    attempts["b"], "b", False, datetime.now(UTC), error="HTTP 500"
                ),
            ],
        )
        rows = {r.partner_id: r for r in conn.execute(sa.select(loans_db.poll_attempts))}
    assert rows["a"].ok and rows["a"].new_loans == 3 and rows["a"].run_id == "run-1"
    assert rows["b"].ok is False and rows["b"].error == "HTTP 500" and rows["b"].finished_at


def test_partner_secrets_are_encrypted_at_rest_and_hidden_from_repr(db):
    with db.begin() as conn:
        partner(conn)
        raw = conn.execute(sa.text("SELECT * FROM lending.partners")).one()._mapping
        [loaded] = loans_db.pollable_partners(conn, BOX)
    stored = " ".join(str(value) for value in raw.values())
    for secret in ("fineract-plain-password", "cs-plain-secret", "sc-plain-credential"):
        assert secret not in stored
        assert secret not in repr(loaded)
    assert loaded.fineract_password == "fineract-plain-password"
    assert loaded.mpesa.consumer_secret == "cs-plain-secret"


def test_secrets_under_another_key_give_a_clear_error_for_that_partner_only(db):
    with db.begin() as conn:
        partner(conn, "acme")
        loans_db.save_partner(
            conn,
            PartnerSetup(id="kilimo", name="k", fineract_base_url="http://f",
                         fineract_tenant_id="k", fineract_username="u", fineract_password="pw"),
            SecretBox(Fernet.generate_key().decode()),
        )  # fmt: skip
        partners = {p.id: p for p in loans_db.pollable_partners(conn, BOX)}
    assert partners["acme"].config_error is None
    assert "partner 'kilimo'" in partners["kilimo"].config_error
    assert "LENDING_ENCRYPTION_KEY" in partners["kilimo"].config_error


def test_a_missing_or_malformed_key_is_refused_without_showing_it():
    with pytest.raises(EncryptionKeyError, match="not set"):
        SecretBox(None)
    with pytest.raises(EncryptionKeyError) as caught:
        SecretBox("short-secret-key")
    assert "short-secret-key" not in str(caught.value)


def test_requests_are_created_once_for_new_approved_loans_of_enabled_products(db):
    with db.begin() as conn:
        partner(conn, "acme")
        partner(conn, "nompesa", mpesa=None)
        loans_db.upsert_tracked_loans(conn, [("acme", None, [loan(99)])])  # seen before enabling
    with db.begin() as conn:
        loans_db.set_auto_disbursal(conn, "acme", [1])
        loans_db.set_auto_disbursal(conn, "nompesa", [1])
    with db.begin() as conn:
        loans_db.upsert_tracked_loans(
            conn,
            [
                ("acme", None, [loan(1), loan(2, product=2), loan(3, status=300), loan(99)]),
                ("nompesa", None, [loan(1)]),
            ],
        )
        created = loans_db.create_disbursement_requests(conn)
        again = loans_db.create_disbursement_requests(conn)
    assert [(r.partner_id, r.fineract_loan_id, r.amount_minor) for r in created] == [
        ("acme", 1, 500_000)
    ]
    assert again == []


def test_switching_auto_disbursal_off_and_on_restamps_it(db):
    with db.begin() as conn:
        partner(conn)
        loans_db.set_auto_disbursal(conn, "acme", [1])
    with db.begin() as conn:
        first = conn.execute(sa.select(loans_db.auto_disbursal_configs.c.enabled_at)).scalar()
        loans_db.set_auto_disbursal(conn, "acme", [1])  # still on: keeps the stamp
    with db.begin() as conn:
        assert (
            conn.execute(sa.select(loans_db.auto_disbursal_configs.c.enabled_at)).scalar() == first
        )
        loans_db.set_auto_disbursal(conn, "acme", [1], enabled=False)
        assert (
            conn.execute(sa.select(loans_db.auto_disbursal_configs.c.enabled_at)).scalar() is None
        )
    with db.begin() as conn:
        loans_db.set_auto_disbursal(conn, "acme", [1])
        assert (
            conn.execute(sa.select(loans_db.auto_disbursal_configs.c.enabled_at)).scalar() > first
        )


def one_claim(db, **partner_extra) -> attempts_db.Claim:
    with db.begin() as conn:
        partner(conn, **partner_extra)
        loans_db.set_auto_disbursal(conn, "acme", [1])
    with db.begin() as conn:
        loans_db.upsert_tracked_loans(conn, [("acme", None, [loan(1)])])
        loans_db.create_disbursement_requests(conn)
        [claim] = attempts_db.due_submissions(conn, datetime.now(UTC))
    return claim


def begin(db, claim: attempts_db.Claim, ocid: str) -> None:
    with db.begin() as conn:
        assert attempts_db.begin_attempt(
            conn, claim, originator_conversation_id=ocid, phone="254712345678", phone_raw=None,
            run_id=None,
        ) == "started"  # fmt: skip


def confirmed(claim, ocid: str, status: str, **extra) -> results_db.Settlement:
    return results_db.Settlement(
        request_id=claim.request.id, originator_conversation_id=ocid, status=status, **extra
    )


def status_of(db):
    with db.connect() as conn:
        return conn.execute(sa.select(loans_db.disbursement_requests)).one()


def test_a_result_arriving_before_the_ack_is_recorded_is_not_undone(db):
    claim = one_claim(db)
    begin(db, claim, "o1")
    assert status_of(db).status == "unknown"  # committed before the B2C call
    with db.begin() as conn:
        results_db.settle(conn, [confirmed(claim, "o1", "succeeded", mpesa_transaction_id="SX1")])
        attempts_db.record_acknowledgement(conn, claim.request.id, "o1", "AG_1")  # late ack
    assert status_of(db).status == "succeeded" and status_of(db).mpesa_transaction_id == "SX1"


def test_a_settled_request_is_never_changed_by_a_later_result(db):
    claim = one_claim(db)
    begin(db, claim, "o1")
    with db.begin() as conn:
        results_db.settle(conn, [confirmed(claim, "o1", "succeeded", mpesa_transaction_id="SX1")])
        rows = results_db.settle(
            conn, [confirmed(claim, "o1", "failed", failure_reason="17: late")]
        )
    assert rows == [] and status_of(db).status == "succeeded"


def test_the_charge_is_reserved_once_by_the_claim_and_refunded_when_the_request_fails_for_good(
    db,
):
    claim = one_claim(db, disbursement_charge_minor=3000, wallet_balance_minor=10_000)

    def wallet():
        with db.connect() as conn:
            return conn.execute(sa.select(loans_db.partners.c.wallet_balance_minor)).scalar()

    assert wallet() == 7000 and status_of(db).charge_minor == 3000  # taken by the claim
    with db.begin() as conn:  # deferred (nothing sent), then claimed again: nothing more taken
        loans_db.defer(conn, claim.request.id, "Fineract unavailable", datetime.now(UTC))
    with db.begin() as conn:
        [again] = attempts_db.due_submissions(conn, datetime.now(UTC))
    assert wallet() == 7000 and not again.wallet_short
    begin(db, again, "o1")
    assert status_of(db).attempts == 1
    with db.begin() as conn:
        results_db.settle(conn, [confirmed(again, "o1", "failed", failure_reason="2040: x")])
    assert wallet() == 10_000 and status_of(db).charge_minor == 0


def test_a_known_failure_rearmed_gets_a_fresh_attempt_and_exhausted_ones_stop(db):
    claim = one_claim(db)
    begin(db, claim, "o1")
    with db.begin() as conn:
        results_db.settle(
            conn, [confirmed(claim, "o1", "failed", failure_reason="17", retryable=True)]
        )
        assert loans_db.rearm(conn, [claim.request.id]) == 1
        [fresh] = attempts_db.due_submissions(conn, datetime.now(UTC))
    assert fresh.request.attempt_started_at is None
    assert fresh.request.originator_conversation_id is None
    assert fresh.request.attempts == 1
    begin(db, fresh, "o2")
    with db.begin() as conn:
        results_db.settle(
            conn, [confirmed(fresh, "o2", "failed", failure_reason="17", retryable=True)]
        )
        assert loans_db.give_up(conn, [claim.request.id], max_attempts=2) == 1
        assert attempts_db.attempt_ids(conn, claim.request.id) == ["o1", "o2"]  # both kept
    final = status_of(db)
    assert final.attempts == 2 and not final.retryable
    assert "stopped after 2 attempts" in final.failure_reason
