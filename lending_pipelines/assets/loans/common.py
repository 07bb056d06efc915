"""What the loans definitions share: group, owners, tags, the polling retry policy, the
schedules' timezone (needed when the definitions load) and the serial job names."""

import dagster as dg

from ...resources.loans_config import LoansConfig
from ...settings import get_settings
from ...workflows.loans.rules import DisbursementRules

GROUP = "loans"
OWNERS = ["team:lending-ops"]
TAGS = {"lending/workflow": "loans"}
POLL_RETRY = dg.RetryPolicy(
    max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
TIMEZONE = get_settings().loans_timezone
POLLING_JOB = "loan_polling_job"
RETRY_JOB = "disbursement_retry_job"
RESULTS_JOB = "mpesa_results_job"


def disbursement_rules(config: LoansConfig) -> DisbursementRules:
    """The disbursement engine's knobs, as plain values, from the `loans_config` resource."""
    return DisbursementRules(
        backoff_seconds=config.disbursement_backoff_seconds,
        submitter_wait_seconds=config.disbursement_submitter_wait_seconds,
        reconcile_after_minutes=config.disbursement_reconcile_after_minutes,
        max_attempts=config.disbursement_max_attempts,
        not_found_gap_minutes=config.disbursement_not_found_gap_minutes,
        timezone=config.timezone,
    )
