"""Workflow 1: loan polling and M-Pesa auto-disbursement — assets and their checks.

  loan_tracking       every active partner's approved loans from Fineract, polled concurrently,
                      upserted into `loan_tracking`; one poll attempt recorded per partner.
  loan_disbursements  one disbursement request per newly tracked loan whose product has
                      auto-disbursal on (and whose partner has M-Pesa), submitted as B2C.

Results, reconciliation and retries run as op jobs (loans_automation.py) fed by the M-Pesa
results sensor and the retry schedule. Checks that fail also alert through the alerts resource.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ..crypto import SecretBox
from ..db import loans as loans_db
from ..domain.disbursement import success_rate
from ..instance import FINERACT_POOL, MPESA_POOL
from ..resources.alerts import AlertsResource
from ..resources.database import DatabaseResource
from ..resources.fineract import FineractResource
from ..resources.mpesa import MpesaResource
from ..settings import get_settings
from ..workflows.incidents import reminder_interval, report_condition
from ..workflows.loans.disbursement import Disburser
from ..workflows.loans.polling import PollingCycle, run_polling_cycle
from .check_alerts import alert_on_check
from .metadata import markdown_table

GROUP = "loans"
OWNERS = ["team:lending-ops"]
TAGS = {"lending/workflow": "loans"}
POLL_RETRY = dg.RetryPolicy(
    max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


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
        "bad_record_details": markdown_table(bad, ["partner", "loan", "field", "value"]),
        "cycle_seconds": round(cycle.seconds, 3),
        "slowest_partner_seconds": round(max((p.seconds for p in cycle.polls), default=0.0), 3),
        "per_partner": markdown_table(rows, columns),
    }


def _alert_on_unreadable_credentials(
    database: DatabaseResource, alerts: AlertsResource, cycle: PollingCycle
) -> None:
    """One incident per partner whose secrets no configured key decrypts (a wrong or missing
    LENDING_ENCRYPTION_KEY): its polls, payments and Fineract records stop; the others go on."""
    remind = reminder_interval(get_settings().alert_reminder_minutes)
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
) -> dg.MaterializeResult:
    settings = get_settings()
    cycle = run_polling_cycle(
        database.get_engine(),
        SecretBox.from_settings(settings),
        fineract,
        concurrency=settings.poll_concurrency,
        timeout_seconds=settings.poll_timeout_seconds,
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
            "errors": markdown_table(
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
        metadata={"mismatches": markdown_table(mismatched, ["partner", "reported", "received"])},
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
) -> dg.MaterializeResult:
    settings = get_settings()
    with database.begin() as conn:
        created = loans_db.create_disbursement_requests(conn, run_id=context.run.run_id)
    with Disburser(
        database.get_engine(),
        SecretBox.from_settings(settings),
        fineract,
        mpesa,
        settings,
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
            "per_partner": markdown_table(
                list(by_partner.values()), ["partner", "requests", "amount_kes"]
            ),
        }
    )


# --- checks ----------------------------------------------------------------------------------


@dg.asset_check(
    asset=loan_tracking,
    description="Polling success over the last hour: below the warn threshold (95 %) warns, an "
    "error rate above the fail threshold (10 %) fails and alerts.",
)
def polling_success_rate(database: DatabaseResource, alerts: AlertsResource) -> dg.AssetCheckResult:
    settings = get_settings()
    with database.begin() as conn:
        ok, failed = loans_db.poll_counts(conn, datetime.now(UTC) - timedelta(hours=1))
    total = ok + failed
    rate = success_rate(ok, failed)
    metadata = {"polls_ok": ok, "polls_failed": failed, "success_rate": float(rate or 1)}
    if rate is None:
        return dg.AssetCheckResult(
            passed=True, description="no polls in the last hour", metadata=metadata
        )
    error_rate = 1 - rate
    if error_rate > settings.poll_error_rate_fail:
        severity, passed = dg.AssetCheckSeverity.ERROR, False
    elif rate < settings.poll_success_rate_warn:
        severity, passed = dg.AssetCheckSeverity.WARN, False
    else:
        severity, passed = dg.AssetCheckSeverity.ERROR, True
    result = dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        description=f"{ok}/{total} polls succeeded in the last hour ({rate:.1%})",
        metadata=metadata,
    )
    alert_on_check(
        database,
        alerts,
        result,
        key="loans.polling_success_rate",
        title="Loan polling error rate too high",
    )
    return result


@dg.asset_check(
    asset=loan_tracking,
    description="At least one new loan was tracked in the last LENDING_NO_NEW_LOAN_HOURS.",
)
def new_loans_tracked_recently(
    database: DatabaseResource, alerts: AlertsResource
) -> dg.AssetCheckResult:
    hours = get_settings().no_new_loan_hours
    with database.begin() as conn:
        last = loans_db.last_new_loan_at(conn)
    passed = last is not None and last >= datetime.now(UTC) - timedelta(hours=hours)
    result = dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"last new loan tracked at {last.isoformat() if last else 'never'}",
        metadata={"last_new_loan_at": last.isoformat() if last else "never", "window_hours": hours},
    )
    alert_on_check(
        database,
        alerts,
        result,
        key="loans.new_loans_tracked_recently",
        title=f"No new loan tracked in {hours} hours",
    )
    return result


@dg.asset_check(
    asset=loan_tracking,
    description="No partner has failed every poll for LENDING_PARTNER_FAILING_MINUTES.",
)
def no_partner_failing_for_an_hour(
    database: DatabaseResource, alerts: AlertsResource
) -> dg.AssetCheckResult:
    minutes = get_settings().partner_failing_minutes
    with database.begin() as conn:
        failing = loans_db.partners_failing_since(
            conn, datetime.now(UTC) - timedelta(minutes=minutes)
        )
    rows = [
        {
            "partner": row.partner_id,
            "failing_since": row.failing_since.isoformat(),
            "failed_polls": row.failed_polls,
            "last_error": (row.last_error or "")[:200],
        }
        for row in failing
    ]
    names = ", ".join(row.partner_id for row in failing)
    result = dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"failing every poll for {minutes} min: {names}" if failing else "none",
        metadata={
            "failing_partners": names or "-",
            "details": markdown_table(
                rows, ["partner", "failing_since", "failed_polls", "last_error"]
            ),
        },
    )
    alert_on_check(
        database,
        alerts,
        result,
        key="loans.no_partner_failing_for_an_hour",
        title="Partner failing every poll",
    )
    return result


@dg.asset_check(
    asset=loan_disbursements,
    description="Auto-disbursement success rate over the last 24 hours is at least "
    "LENDING_DISBURSEMENT_SUCCESS_RATE_MIN (retryable failures not yet counted).",
)
def disbursement_success_rate(
    database: DatabaseResource, alerts: AlertsResource
) -> dg.AssetCheckResult:
    minimum = get_settings().disbursement_success_rate_min
    with database.begin() as conn:
        succeeded, failed = loans_db.disbursement_outcomes(
            conn, datetime.now(UTC) - timedelta(hours=24)
        )
    rate = success_rate(succeeded, failed)
    result = dg.AssetCheckResult(
        passed=rate is None or rate >= minimum,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "no finished disbursements in 24 h"
            if rate is None
            else f"{succeeded}/{succeeded + failed} succeeded ({rate:.1%}; minimum {minimum:.0%})"
        ),
        metadata={"succeeded": succeeded, "failed": failed, "minimum": float(minimum)},
    )
    alert_on_check(
        database,
        alerts,
        result,
        key="loans.disbursement_success_rate",
        title="Auto-disbursement success rate too low",
    )
    return result


@dg.asset_check(
    asset=loan_disbursements,
    description="No disbursement is without a final outcome (or a paid one unrecorded in "
    "Fineract) for longer than LENDING_DISBURSEMENT_STUCK_MINUTES.",
)
def no_stuck_disbursements(
    database: DatabaseResource, alerts: AlertsResource
) -> dg.AssetCheckResult:
    minutes = get_settings().disbursement_stuck_minutes
    with database.begin() as conn:
        stuck = loans_db.stuck_disbursements(conn, datetime.now(UTC) - timedelta(minutes=minutes))
    rows = [
        {
            "request": row.id,
            "partner": row.partner_id,
            "loan": row.fineract_loan_id,
            "status": row.status,
            "since": row.created_at.isoformat(),
        }
        for row in stuck[:50]
    ]
    result = dg.AssetCheckResult(
        passed=not stuck,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(stuck)} disbursement(s) stuck for more than {minutes} min",
        metadata={
            "stuck": len(stuck),
            "oldest": markdown_table(rows, ["request", "partner", "loan", "status", "since"]),
        },
    )
    alert_on_check(
        database, alerts, result, key="loans.no_stuck_disbursements", title="Disbursements stuck"
    )
    return result


LOANS_ASSETS = [loan_tracking, loan_disbursements]
LOANS_ASSET_CHECKS = [
    polling_success_rate,
    new_loans_tracked_recently,
    no_partner_failing_for_an_hour,
    disbursement_success_rate,
    no_stuck_disbursements,
]
