"""Recording confirmed M-Pesa payments in Fineract: the disburse command with the transaction
externalId `mpesa-<receipt>` (its Idempotency-Key makes a repeat a replay). A loan Fineract
already shows disbursed counts as recorded only when one of its transactions carries our
externalId; otherwise it was disbursed another way: held for a person and alerted."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ...db import disbursement_results as results_db
from ...db import loans as loans_db
from ...partners.fineract import FineractClient, FineractError, LoanStatusId

if TYPE_CHECKING:
    from .disbursement import Disburser

log = logging.getLogger(__name__)

NOT_DISBURSABLE = "error.msg.loan.disbursal.account.is.not.approve.not.disbursed.state"


def record_in_fineract(disburser: Disburser, limit: int = 500) -> Counter[str]:
    """Record every confirmed, unrecorded disbursement in Fineract (disburse command with
    the transaction externalId `mpesa-<receipt>`). The Idempotency-Key makes a repeat a
    replay. A loan Fineract already shows disbursed counts as recorded only when one of its
    transactions carries our externalId; otherwise someone disbursed it another way: the
    request is held for a person and an alert goes out (`alarms`)."""
    with disburser.engine.begin() as conn:
        rows = loans_db.succeeded_unrecorded(conn, limit)
    counts: Counter[str] = Counter()
    if not rows:
        return counts
    partners = disburser._partners(row.partner_id for row in rows)
    today = datetime.now(ZoneInfo(disburser.rules.timezone)).date()
    for row in rows:
        partner = partners[row.partner_id]
        if partner.config_error:  # alerted per partner by the polling step; others go on
            log.warning("Fineract record of request %s skipped: %s", row.id, partner.config_error)
            counts["credentials_unreadable"] += 1
            continue
        client = disburser._fineract_for(partner)
        external_id = f"mpesa-{row.mpesa_transaction_id}"
        try:
            result = client.disburse(
                row.fineract_loan_id,
                on=today,
                reference=row.mpesa_transaction_id,
                transaction_external_id=external_id,
                receipt_number=row.mpesa_transaction_id,
                note=f"Disbursed via M-Pesa B2C, transaction {row.mpesa_transaction_id}",
            )
            transaction_id = result.sub_resource_id
        except FineractError as exc:
            verdict = (
                _already_recorded(client, row, external_id)
                if NOT_DISBURSABLE in exc.error_codes
                else None
            )
            if verdict == "ours":
                transaction_id = None
            elif verdict == "other":
                problem = (
                    f"partner {row.partner_id!r} loan {row.fineract_loan_id} is already "
                    f"disbursed in Fineract, but no transaction carries externalId "
                    f"{external_id!r}: it was disbursed another way while M-Pesa paid "
                    f"{row.mpesa_transaction_id} (disbursement request {row.id})"
                )
                with disburser.engine.begin() as conn:
                    loans_db.mark_fineract_error(conn, row.id, problem)
                    flagged = results_db.flag_for_review(
                        conn, [(row.id, problem)], run_id=disburser.run_id
                    )
                disburser.alarms.extend(reason for _, reason in flagged)
                counts["needs_review"] += 1
                continue
            else:
                with disburser.engine.begin() as conn:
                    loans_db.mark_fineract_error(conn, row.id, str(exc))
                counts["fineract_error"] += 1
                continue
        with disburser.engine.begin() as conn:
            loans_db.mark_recorded_in_fineract(conn, row.id, transaction_id)
        counts["recorded"] += 1
    return counts


def _already_recorded(client: FineractClient, row: sa.Row, external_id: str) -> str | None:
    """ "ours" when the loan is active with our disbursement transaction, "other" when it is
    active without it, None when that cannot be told now."""
    try:
        if client.get_loan(row.fineract_loan_id).status.id < LoanStatusId.ACTIVE:
            return None
        ids = client.loan_transaction_external_ids(row.fineract_loan_id)
    except FineractError:
        return None
    return "ours" if external_id in ids else "other"
