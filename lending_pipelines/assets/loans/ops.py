"""The loans op steps: applying stored M-Pesa results and the disbursement retry round. Each
takes the database's submitter lock and claims its rows (db/disbursement_attempts.py), so
overlapping runs of any kind send at most one B2C per request."""

from collections import Counter

import dagster as dg

from ...crypto import SecretBox
from ...instance import MPESA_POOL
from ...resources.alerts import AlertsResource
from ...resources.database import DatabaseResource
from ...resources.fineract import FineractResource
from ...resources.loans_config import LoansConfig
from ...resources.mpesa import MpesaResource
from ...settings import get_settings
from ...workflows.loans.disbursement import Disburser
from .common import disbursement_rules


def _disburser(
    context: dg.OpExecutionContext, database, fineract, mpesa, loans_config: LoansConfig
) -> Disburser:
    settings = get_settings()
    return Disburser(
        database.get_engine(),
        SecretBox.from_settings(settings),
        fineract,
        mpesa,
        disbursement_rules(loans_config),
        run_id=context.run.run_id,
    )


def _metadata(prefix: str, counts: Counter[str]) -> dict[str, int]:
    return {f"{prefix}_{name}": int(count) for name, count in sorted(counts.items())}


@dg.op(
    tags={"lending/workflow": "loans"},
    pool=MPESA_POOL,
    description="Apply stored M-Pesa callbacks as hints (confirmed by a transaction-status "
    "query sent right away) and status answers as outcomes, then record confirmed payments in "
    "Fineract with the M-Pesa transaction id.",
)
def apply_mpesa_results(
    context: dg.OpExecutionContext,
    database: DatabaseResource,
    fineract: FineractResource,
    mpesa: MpesaResource,
    alerts: AlertsResource,
    loans_config: LoansConfig,
) -> None:
    with _disburser(context, database, fineract, mpesa, loans_config) as disburser:
        report = disburser.apply_callbacks()
        queried = disburser.reconcile(hinted_only=True)  # confirm what the callbacks claim
        recorded = disburser.record_in_fineract()
    for problem in [*report.alarming, *disburser.alarms]:
        alerts.send("M-Pesa result needs attention", problem, severity="critical")
    for event_id, error in report.errors.items():
        context.log.warning(f"inbound event {event_id}: {error}")
    context.add_output_metadata(
        {
            **_metadata("applied", report.applied),
            "ignored": report.ignored,
            "errors": len(report.errors),
            **_metadata("status_query", queried),
            **_metadata("fineract", recorded),
        }
    )


@dg.op(
    tags={"lending/workflow": "loans"},
    pool=MPESA_POOL,
    description="Retry known-failed retryable disbursements with a new attempt (backoff, "
    "maximum attempts), reconcile silent ones with a status query, send due pending ones and "
    "record paid ones in Fineract.",
)
def retry_disbursements(
    context: dg.OpExecutionContext,
    database: DatabaseResource,
    fineract: FineractResource,
    mpesa: MpesaResource,
    alerts: AlertsResource,
    loans_config: LoansConfig,
) -> None:
    with _disburser(context, database, fineract, mpesa, loans_config) as disburser:
        retried = disburser.retry_failures()
        queried = disburser.reconcile()
        submitted = disburser.submit_due()
        recorded = disburser.record_in_fineract()
    for problem in disburser.alarms:
        alerts.send("M-Pesa disbursement needs attention", problem, severity="critical")
    if retried["stopped"]:
        alerts.send(
            "Disbursements stopped",
            f"{retried['stopped']} disbursement(s) failed after "
            f"{loans_config.disbursement_max_attempts} attempts and will not be retried",
            severity="error",
        )
    context.add_output_metadata(
        {
            **_metadata("retry", retried),
            **_metadata("reconcile", queried),
            **_metadata("submission", submitted),
            **_metadata("fineract", recorded),
        }
    )
