"""The polling upsert ships a partner's loans as one JSON document, not 15 bound arrays (whose
per-element adaptation held the GIL as long as the statement ran), and stores every field
exactly as parsed: amounts to the last decimal, dates, missing fields, any text."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from lending_pipelines.db import loans as loans_db
from lending_pipelines.resources.fineract import FineractLoan, LoanStatus
from tests.integration.test_loans_db import partner


def _loan(loan_id: int, **fields) -> FineractLoan:
    values = {
        "tenant": "t",
        "id": loan_id,
        "account_no": f"{loan_id:09d}",
        "status": LoanStatus(200, "loanStatusType.approved", "Approved"),
        "currency": "KES",
        "principal": Decimal("5000"),
        **fields,
    }
    return FineractLoan(**values)


def test_a_partners_loans_are_bound_as_one_json_document_not_an_array_per_column(db):
    with db.begin() as conn:
        partner(conn, "acme")
    bound: list[dict] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "loan_tracking" in statement:
            bound.append(parameters)

    sa.event.listen(db, "before_cursor_execute", capture)
    try:
        with db.begin() as conn:
            new = loans_db.upsert_tracked_loans(
                conn, [("acme", None, [_loan(n) for n in range(1, 1001)])]
            )
    finally:
        sa.event.remove(db, "before_cursor_execute", capture)
    assert new == {"acme": 1000}
    (parameters,) = bound
    assert [type(value) for value in parameters.values()] == [str]


def test_every_field_is_stored_exactly_as_parsed(db):
    with db.begin() as conn:
        partner(conn, "acme")
        partner(conn, "kilimo")
    full = _loan(
        7,
        principal=Decimal("123456789012.345678"),
        external_id='LN-"7"\\x',
        client_id=42,
        client_name="Wanjiru Njoki — ü 中",
        product_id=3,
        product_name='Boda, "Mobile" {Loan}',
        approved_on=date(2024, 2, 29),
        expected_disbursement_on=date(2024, 3, 1),
    )
    bare = _loan(8, principal=Decimal("0.01"))
    with db.begin() as conn:
        attempt = loans_db.start_poll_attempts(conn, ["kilimo"], None)["kilimo"]
        loans_db.upsert_tracked_loans(
            conn, [("acme", None, [full, full]), ("kilimo", attempt, [bare])]
        )
        rows = {
            row.fineract_loan_id: row
            for row in conn.execute(sa.select(loans_db.loan_tracking)).mappings()
        }
    assert len(rows) == 2
    stored = rows[7]
    assert (stored["partner_id"], stored["account_no"], stored["principal"]) == (
        "acme",
        "000000007",
        Decimal("123456789012.345678"),
    )
    assert (stored["external_id"], stored["client_id"], stored["client_name"]) == (
        'LN-"7"\\x',
        42,
        "Wanjiru Njoki — ü 中",
    )
    assert (stored["loan_product_id"], stored["product_name"]) == (3, 'Boda, "Mobile" {Loan}')
    assert (stored["approved_on"], stored["expected_disbursement_on"]) == (
        date(2024, 2, 29),
        date(2024, 3, 1),
    )
    assert (stored["status_id"], stored["status_value"], stored["currency"]) == (
        200,
        "Approved",
        "KES",
    )
    assert stored["last_poll_attempt_id"] is None
    other = rows[8]
    assert (other["partner_id"], other["principal"], other["last_poll_attempt_id"]) == (
        "kilimo",
        Decimal("0.01"),
        attempt,
    )
    assert other["external_id"] is None and other["client_name"] is None
    assert other["approved_on"] is None and other["loan_product_id"] is None
