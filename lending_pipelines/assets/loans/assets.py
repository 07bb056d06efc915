"""Workflow 1: loan polling and M-Pesa auto-disbursement — the assets.

  loan_tracking       every active partner's approved loans from Fineract, polled concurrently,
                      upserted into `loan_tracking`; one poll attempt recorded per partner.
  loan_disbursements  one disbursement request per newly tracked loan whose product has
                      auto-disbursal on (and whose partner has M-Pesa), submitted as B2C.

Their checks are in `checks.py`; results, reconciliation and retries run as op jobs (`ops.py`,
`jobs.py`) fed by the M-Pesa results sensor and the retry schedule.
"""

import dagster as dg

from ...crypto import SecretBox
from ...db import loans as loans_db
from ...instance import FINERACT_POOL, MPESA_POOL
from ...resources.alerts import AlertsResource
from ...resources.database import DatabaseResource
from ...resources.fineract import FineractResource
from ...resources.loans_config import LoansConfig
from ...resources.mpesa import MpesaResource
from ...settings import get_settings
from ...workflows.incidents import reminder_interval, report_condition
from ...workflows.loans.disbursement import Disburser
from ...workflows.loans.polling import PollingCycle, run_polling_cycle
from ..metadata import table_metadata
from ..platform_tables import PARTNERS_TABLE
from .common import GROUP, OWNERS, POLL_RETRY, TAGS, disbursement_rules


def _poll_metadata(cycle: PollingCycle) -> dict:
    rows = [
        {
            "partner": poll.partner_id,
            "ok": "yes" if poll.ok else "FAILED",
            "seen": len(poll.loans),
            "new": cycle.new_by_partner.get(poll.partner_id, 0),
            "pages": poll.pages,
            "bad": len(poll.bad_records),
            "total_reported": poll.total_reported if poll.ok else "",
            "seconds": f"{poll.seconds:.2f}",
            "error": (poll.error or "")[:200],
        }
        for poll in cycle.polls
    ]
    columns = ["partner", "ok", "seen", "new", "pages", "bad", "total_reported", "seconds", "error"]
    bad = [
        {"partner": poll.partner_id, "loan": b.loan_id, "field": b.field, "value": b.value}
        for poll in cycle.polls
        for b in poll.bad_records
    ]
    return {
        "partners_polled": len(cycle.polls),
        "partners_failed": len(cycle.failed),
        "loans_seen": cycle.loans_seen,
        "new_loans": cycle.new_loans,
        "bad_records": cycle.bad_records,
        "bad_record_details": table_metadata(bad, ["partner", "loan", "field", "value"]),
        "cycle_seconds": round(cycle.seconds, 3),
        "slowest_partner_seconds": round(max((p.seconds for p in cycle.polls), default=0.0), 3),
        "per_partner": table_metadata(rows, columns),
    }


def _alert_on_unreadable_credentials(
    database: DatabaseResource, alerts: AlertsResource, cycle: PollingCycle
) -> None:
    """One incident per partner whose secrets no configured key decrypts (a wrong or missing
    LENDING_ENCRYPTION_KEY): its polls, payments and Fineract records stop; the others go on."""
    remind = reminder_interval(alerts.reminder_minutes)
    for poll in cycle.polls:
        report_condition(
            database.get_engine(),
            alerts.send,
            key=f"loans.partner_credentials:{poll.partner_id}",
            firing=poll.credentials_error is not None,
            title=f"Partner {poll.partner_id!r}: stored credentials cannot be decrypted",
            text=poll.credentials_error or f"partner {poll.partner_id!r} credentials readable",
            severity="critical",
            remind_every=remind,
        )


@dg.asset(
    deps=[PARTNERS_TABLE],
    group_name=GROUP,
    kinds={"fineract", "postgres"},
    owners=OWNERS,
    tags=TAGS,
    pool=FINERACT_POOL,
    retry_policy=POLL_RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            "all_partners_polled",
            asset="loan_tracking",
            description="Every pollable partner answered this cycle (failed ones are named).",
        ),
        dg.AssetCheckSpec(
            "partner_totals_consistent",
            asset="loan_tracking",
            description="Each partner's totalFilteredRecords matches the loans its pages held "
            "(a mismatch warns: the server's count lies, or loans moved between pages).",
        ),
    ],
    description="Approved loans awaiting disbursal at every active partner (Fineract status "
    "200), keyed by (partner, Fineract loan id); first_seen_at kept, last_seen_at refreshed.",
)
def loan_tracking(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    fineract: FineractResource,
    alerts: AlertsResource,
    loans_config: LoansConfig,
) -> dg.MaterializeResult:
    settings = get_settings()
    cycle = run_polling_cycle(
        database.get_engine(),
        SecretBox.from_settings(settings),
        fineract,
        concurrency=loans_config.poll_concurrency,
        timeout_seconds=loans_config.poll_timeout_seconds,
        run_id=context.run.run_id,
    )
    for poll in cycle.failed:
        context.log.warning(f"partner {poll.partner_id!r} poll failed: {poll.error}")
    _alert_on_unreadable_credentials(database, alerts, cycle)
    failed = {poll.partner_id: poll.error for poll in cycle.failed}
    check = dg.AssetCheckResult(
        check_name="all_partners_polled",
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "failed: " + ", ".join(sorted(failed)) if failed else "every partner answered"
        ),
        metadata={
            "failed_partners": ", ".join(sorted(failed)) or "-",
            "errors": table_metadata(
                [{"partner": p, "error": (e or "")[:300]} for p, e in sorted(failed.items())],
                ["partner", "error"],
            ),
        },
    )
    mismatched = [
        {"partner": p.partner_id, "reported": p.total_reported, "received": p.records_received}
        for p in cycle.total_mismatches
    ]
    totals = dg.AssetCheckResult(
        check_name="partner_totals_consistent",
        passed=not mismatched,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "; ".join(
                f"{m['partner']}: reported {m['reported']}, pages held {m['received']}"
                for m in mismatched
            )
            or "every partner's total matches its pages"
        ),
        metadata={"mismatches": table_metadata(mismatched, ["partner", "reported", "received"])},
    )
    return dg.MaterializeResult(metadata=_poll_metadata(cycle), check_results=[check, totals])


@dg.asset(
    deps=[loan_tracking],
    group_name=GROUP,
    kinds={"mpesa", "postgres"},
    owners=OWNERS,
    tags=TAGS,
    pool=MPESA_POOL,
    description="One M-Pesa B2C disbursement request per newly tracked approved loan whose "
    "(partner, product) has auto-disbursal on; submitted with a deterministic "
    "OriginatorConversationID (results arrive later through the callback receiver).",
)
def loan_disbursements(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    fineract: FineractResource,
    mpesa: MpesaResource,
    loans_config: LoansConfig,
) -> dg.MaterializeResult:
    settings = get_settings()
    with database.begin() as conn:
        created = loans_db.create_disbursement_requests(conn, run_id=context.run.run_id)
    with Disburser(
        database.get_engine(),
        SecretBox.from_settings(settings),
        fineract,
        mpesa,
        disbursement_rules(loans_config),
        run_id=context.run.run_id,
    ) as disburser:
        outcomes = disburser.submit_due()
    by_partner: dict[str, dict] = {}
    for row in created:
        entry = by_partner.setdefault(row.partner_id, {"partner": row.partner_id, "requests": 0})
        entry["requests"] += 1
        entry["amount_kes"] = entry.get("amount_kes", 0) + row.amount_minor // 100
    return dg.MaterializeResult(
        metadata={
            "requests_created": len(created),
            "amount_requested_kes": sum(row.amount_minor for row in created) // 100,
            **{f"submission_{name}": count for name, count in sorted(outcomes.items())},
            "per_partner": table_metadata(
                list(by_partner.values()), ["partner", "requests", "amount_kes"]
            ),
        }
    )


LOANS_ASSETS = [loan_tracking, loan_disbursements]
