"""Polling: poll attempts opened and closed for all partners in one statement each; tracked
loans upserted for all partners in one `INSERT ... SELECT FROM unnest(...) ON CONFLICT`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...domain.tracked_loans import FineractLoan
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
        -- One JSON array of rows: binding 15 arrays adapts every element in Python (GIL-bound,
        -- as long as the upsert itself); amounts travel as text, so numeric stays exact.
        SELECT r->>0 AS partner_id, CAST(r->>1 AS bigint) AS fineract_loan_id,
               r->>2 AS account_no, r->>3 AS external_id, CAST(r->>4 AS bigint) AS client_id,
               r->>5 AS client_name, CAST(r->>6 AS bigint) AS loan_product_id,
               r->>7 AS product_name, CAST(r->>8 AS integer) AS status_id,
               r->>9 AS status_value, CAST(r->>10 AS numeric) AS principal,
               r->>11 AS currency, CAST(r->>12 AS date) AS approved_on,
               CAST(r->>13 AS date) AS expected_disbursement_on,
               CAST(r->>14 AS bigint) AS last_poll_attempt_id
          FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r
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
    rows = [
        [
            partner_id, loan.id, loan.account_no, loan.external_id, loan.client_id,
            loan.client_name, loan.product_id, loan.product_name, loan.status.id,
            loan.status.value, loan.principal, loan.currency, loan.approved_on,
            loan.expected_disbursement_on, attempt_id,
        ]
        for partner_id, attempt_id, loans in polled
        for loan in {loan.id: loan for loan in loans}.values()
    ]  # fmt: skip
    if not rows:
        return {}
    # pydantic-core writes the document in Rust: a Decimal as its exact string (str()), a date
    # as yyyy-mm-dd; json.dumps and the per-row conversions took twice as long.
    document = pydantic_core.to_json(rows).decode()
    result = conn.execute(_UPSERT_LOANS, {"rows": document})
    return {row.partner_id: row.new_loans for row in result}
