"""Polling: poll attempts opened and closed for all partners in one statement each; tracked
loans upserted for all partners in one `INSERT ... SELECT FROM unnest(...) ON CONFLICT`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...partners.fineract import FineractLoan
from .tables import (
    T,
)


def start_poll_attempts(
    conn: Connection, partner_ids: Sequence[str], run_id: str | None
) -> dict[str, int]:
    """Open one poll attempt per partner (one statement); returns partner id → attempt id."""
    if not partner_ids:
        return {}
    rows = conn.execute(
        sa.text(
            f"INSERT INTO {T}poll_attempts (partner_id, run_id) "
            "SELECT p, CAST(:run_id AS text) FROM unnest(CAST(:ids AS text[])) AS p "
            "RETURNING partner_id, id"
        ),
        {"ids": list(partner_ids), "run_id": run_id},
    )
    return {row.partner_id: row.id for row in rows}


@dataclass(frozen=True)
class PollOutcome:
    attempt_id: int
    partner_id: str
    ok: bool
    finished_at: datetime
    loans_seen: int = 0
    new_loans: int = 0
    pages: int = 0
    error: str | None = None


def finish_poll_attempts(conn: Connection, outcomes: Sequence[PollOutcome]) -> None:
    """Close every partner's attempt in one UPDATE ... FROM unnest(...)."""
    if not outcomes:
        return
    conn.execute(
        sa.text(
            f"UPDATE {T}poll_attempts AS p SET finished_at = v.finished_at, ok = v.ok, "
            "loans_seen = v.loans_seen, new_loans = v.new_loans, pages = v.pages, error = v.error "
            "FROM unnest(CAST(:id AS bigint[]), CAST(:finished AS timestamptz[]), "
            "CAST(:ok AS boolean[]), CAST(:seen AS integer[]), CAST(:new AS integer[]), "
            "CAST(:pages AS integer[]), CAST(:error AS text[])) "
            "AS v(id, finished_at, ok, loans_seen, new_loans, pages, error) WHERE p.id = v.id"
        ),
        {
            "id": [o.attempt_id for o in outcomes],
            "finished": [o.finished_at for o in outcomes],
            "ok": [o.ok for o in outcomes],
            "seen": [o.loans_seen for o in outcomes],
            "new": [o.new_loans for o in outcomes],
            "pages": [o.pages for o in outcomes],
            "error": [o.error for o in outcomes],
        },
    )


_UPSERT_LOANS = sa.text(
    f"""
    WITH incoming AS (
        SELECT * FROM unnest(
            CAST(:partner_id AS text[]), CAST(:loan_id AS bigint[]), CAST(:account_no AS text[]),
            CAST(:external_id AS text[]), CAST(:client_id AS bigint[]),
            CAST(:client_name AS text[]), CAST(:product_id AS bigint[]),
            CAST(:product_name AS text[]), CAST(:status_id AS integer[]),
            CAST(:status_value AS text[]), CAST(:principal AS numeric[]),
            CAST(:currency AS text[]), CAST(:approved_on AS date[]),
            CAST(:expected_on AS date[]), CAST(:attempt_id AS bigint[])
        ) AS t(partner_id, fineract_loan_id, account_no, external_id, client_id, client_name,
               loan_product_id, product_name, status_id, status_value, principal, currency,
               approved_on, expected_disbursement_on, last_poll_attempt_id)
    ), upserted AS (
        INSERT INTO {T}loan_tracking (partner_id, fineract_loan_id, account_no, external_id,
            client_id, client_name, loan_product_id, product_name, status_id, status_value,
            principal, currency, approved_on, expected_disbursement_on, last_poll_attempt_id)
        SELECT * FROM incoming
        ON CONFLICT (partner_id, fineract_loan_id) DO UPDATE SET
            account_no = EXCLUDED.account_no,
            external_id = EXCLUDED.external_id,
            client_id = EXCLUDED.client_id,
            client_name = EXCLUDED.client_name,
            loan_product_id = EXCLUDED.loan_product_id,
            product_name = EXCLUDED.product_name,
            status_id = EXCLUDED.status_id,
            status_value = EXCLUDED.status_value,
            principal = EXCLUDED.principal,
            currency = EXCLUDED.currency,
            approved_on = EXCLUDED.approved_on,
            expected_disbursement_on = EXCLUDED.expected_disbursement_on,
            last_poll_attempt_id = EXCLUDED.last_poll_attempt_id,
            last_seen_at = now()
        RETURNING partner_id, (xmax = 0) AS inserted
    )
    SELECT partner_id, count(*) FILTER (WHERE inserted) AS new_loans FROM upserted
    GROUP BY partner_id
    """
)


def upsert_tracked_loans(
    conn: Connection, polled: Sequence[tuple[str, int | None, Sequence[FineractLoan]]]
) -> dict[str, int]:
    """Upsert every polled loan of every partner in ONE statement keyed by (partner, loan id):
    new rows keep `first_seen_at`, existing ones refresh status and `last_seen_at`.
    `polled` is (partner id, poll attempt id, loans). Returns partner id → new loans."""
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "partner_id", "loan_id", "account_no", "external_id", "client_id", "client_name",
            "product_id", "product_name", "status_id", "status_value", "principal", "currency",
            "approved_on", "expected_on", "attempt_id",
        )
    }  # fmt: skip
    for partner_id, attempt_id, loans in polled:
        for loan in {loan.id: loan for loan in loans}.values():
            columns["partner_id"].append(partner_id)
            columns["loan_id"].append(loan.id)
            columns["account_no"].append(loan.account_no)
            columns["external_id"].append(loan.external_id)
            columns["client_id"].append(loan.client_id)
            columns["client_name"].append(loan.client_name)
            columns["product_id"].append(loan.product_id)
            columns["product_name"].append(loan.product_name)
            columns["status_id"].append(loan.status.id)
            columns["status_value"].append(loan.status.value)
            columns["principal"].append(loan.principal)
            columns["currency"].append(loan.currency)
            columns["approved_on"].append(loan.approved_on)
            columns["expected_on"].append(loan.expected_disbursement_on)
            columns["attempt_id"].append(attempt_id)
    if not columns["loan_id"]:
        return {}
    return {row.partner_id: row.new_loans for row in conn.execute(_UPSERT_LOANS, columns)}
