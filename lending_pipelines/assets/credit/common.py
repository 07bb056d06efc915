"""What the credit definitions share: group, owners, serial tags, retry policy, the run's actor."""

import dagster as dg

from ...instance import serial_tags

GROUP = "credit"
OWNERS = ["team:credit-ops"]
ACTOR_TAG = "lending/actor"
WORKFLOW_TAG = {"lending/workflow": "credit"}
PAUSE_SERIAL = serial_tags("credit_pause")  # guardrails, auto-pause and Launchpad pause/unpause
REMINDER_SERIAL = serial_tags("payment_reminders")
ORDERS_SERIAL = serial_tags("credit_orders")
INSIGHTS_SERIAL = serial_tags("retailer_insights")
LEDGER_SERIAL = serial_tags("credit_ledger")  # payments and adjustments
RETRY = dg.RetryPolicy(
    max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def run_actor(context: dg.OpExecutionContext) -> str:
    tags = context.run.tags
    if ACTOR_TAG in tags:
        return tags[ACTOR_TAG]
    if "dagster/schedule_name" in tags:
        return f"schedule:{tags['dagster/schedule_name']}"
    if "dagster/sensor_name" in tags:
        return f"sensor:{tags['dagster/sensor_name']}"
    return f"dagster:{context.run.job_name}"


def fail_on_failed_messages(what: str, failed: dict[str, str], metadata: dict) -> None:
    """A message Twilio refused fails the run after every other one was sent and recorded."""
    if failed:
        raise dg.Failure(
            description=f"{what}: {len(failed)} WhatsApp message(s) failed: "
            + "; ".join(f"{key}: {error}" for key, error in sorted(failed.items())[:5]),
            metadata=metadata,
            allow_retries=False,
        )
