"""What the loans definitions share: group, owners, tags, the polling retry policy, the
schedules' timezone (needed when the definitions load) and the serial job names."""

import dagster as dg

from ...settings import get_settings

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
