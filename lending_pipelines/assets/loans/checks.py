"""The checks of the loans assets; a check that fails also alerts through the alerts resource."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ...db import loans as loans_db
from ...domain.disbursement import success_rate
from ...resources.alerts import AlertsResource
from ...resources.database import DatabaseResource
from ...resources.loans_config import LoansConfig
from ..check_alerts import alert_on_check
from ..metadata import table_metadata
from .assets import loan_disbursements, loan_tracking


@dg.asset_check(
    asset=loan_tracking,
    description="Polling success over the last hour: below the warn threshold (95 %) warns, an "
    "error rate above the fail threshold (10 %) fails and alerts.",
)
def polling_success_rate(
    database: DatabaseResource, alerts: AlertsResource, loans_config: LoansConfig
) -> dg.AssetCheckResult:
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
    if error_rate > loans_config.rate("poll_error_rate_fail"):
        severity, passed = dg.AssetCheckSeverity.ERROR, False
    elif rate < loans_config.rate("poll_success_rate_warn"):
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
    database: DatabaseResource, alerts: AlertsResource, loans_config: LoansConfig
) -> dg.AssetCheckResult:
    hours = loans_config.no_new_loan_hours
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
    database: DatabaseResource, alerts: AlertsResource, loans_config: LoansConfig
) -> dg.AssetCheckResult:
    minutes = loans_config.partner_failing_minutes
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
            "details": table_metadata(
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
    database: DatabaseResource, alerts: AlertsResource, loans_config: LoansConfig
) -> dg.AssetCheckResult:
    minimum = loans_config.rate("disbursement_success_rate_min")
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
    database: DatabaseResource, alerts: AlertsResource, loans_config: LoansConfig
) -> dg.AssetCheckResult:
    minutes = loans_config.disbursement_stuck_minutes
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
            "oldest": table_metadata(rows, ["request", "partner", "loan", "status", "since"]),
        },
    )
    alert_on_check(
        database, alerts, result, key="loans.no_stuck_disbursements", title="Disbursements stuck"
    )
    return result


LOANS_ASSET_CHECKS = [
    polling_success_rate,
    new_loans_tracked_recently,
    no_partner_failing_for_an_hour,
    disbursement_success_rate,
    no_stuck_disbursements,
]
