"""Credit jobs (daily asset jobs, the order-recovery jobs and the Launchpad op jobs) and their
schedules, all in LENDING_CREDIT_TIMEZONE, all skipping while CRON_ENABLED is off."""

from datetime import timedelta

import dagster as dg

from ...kill_switch import automation_paused
from ...resources.database import DatabaseResource
from .assets import credit_auto_pause, credit_guardrails, credit_risk_dashboard
from .common import (
    ACTOR_TAG,
    INSIGHTS_SERIAL,
    LEDGER_SERIAL,
    ORDERS_SERIAL,
    PAUSE_SERIAL,
    REMINDER_SERIAL,
    WORKFLOW_TAG,
)
from .insights import retailer_insights
from .ops import (
    adjust_credit,
    change_credit_guardrails,
    pause_credit,
    record_credit_payment,
    unpause_credit,
)
from .orders import order_follow_ups, pending_orders, reverse_failed_orders_op
from .partitions import TIMEZONE, local
from .reminders import REMINDERS_OFF, payment_reminders, reminders_off

credit_guardrails_job = dg.define_asset_job(
    "credit_guardrails_job",
    selection=[credit_risk_dashboard, credit_guardrails],
    tags={**PAUSE_SERIAL, **WORKFLOW_TAG},
    description="Risk dashboard, then pause retailers breaking a guardrail (one business day).",
)
credit_auto_pause_job = dg.define_asset_job(
    "credit_auto_pause_job",
    selection=[credit_auto_pause],
    tags={**PAUSE_SERIAL, **WORKFLOW_TAG},
    description="Auto-pause overdue or over-limit retailers (one business day).",
)
payment_reminders_job = dg.define_asset_job(
    "payment_reminders_job",
    selection=[payment_reminders],
    tags={**REMINDER_SERIAL, **WORKFLOW_TAG},
    description="WhatsApp payment reminders for the business day (REMINDERS_ENABLED).",
)
pending_order_expiry_job = dg.define_asset_job(
    "pending_order_expiry_job",
    selection=[pending_orders],
    tags={**ORDERS_SERIAL, **WORKFLOW_TAG},
    description="Mark pending orders older than the expiry EXPIRED.",
)
order_follow_ups_job = dg.define_asset_job(
    "order_follow_ups_job",
    selection=[order_follow_ups],
    tags={**ORDERS_SERIAL, **WORKFLOW_TAG},
    description="One WhatsApp follow-up per recently expired pending order.",
)
retailer_insights_job = dg.define_asset_job(
    "retailer_insights_job",
    selection=[retailer_insights],
    tags={**INSIGHTS_SERIAL, **WORKFLOW_TAG},
    description="Regenerate retailer insights for one business day.",
)


@dg.job(
    tags={**ORDERS_SERIAL, **WORKFLOW_TAG},
    description="Reverse failed CREDIT orders' debits once and notify the retailers (sensor).",
)
def failed_order_reversal_job():
    reverse_failed_orders_op()


@dg.job(tags={**PAUSE_SERIAL, **WORKFLOW_TAG}, description="Pause a retailer's credit (Launchpad).")
def pause_credit_job():
    pause_credit()


@dg.job(
    tags={**PAUSE_SERIAL, **WORKFLOW_TAG}, description="Unpause a retailer's credit (Launchpad)."
)
def unpause_credit_job():
    unpause_credit()


@dg.job(
    tags={**LEDGER_SERIAL, **WORKFLOW_TAG},
    description="Record a payment against a credit transaction (Launchpad).",
)
def record_credit_payment_job():
    record_credit_payment()


@dg.job(
    tags={**LEDGER_SERIAL, **WORKFLOW_TAG},
    description="Debit or credit adjustment of a retailer's credit (Launchpad).",
)
def credit_adjustment_job():
    adjust_credit()


@dg.job(
    tags={**PAUSE_SERIAL, **WORKFLOW_TAG},
    description="Change a retailer's max_order_value / max_outstanding_days (Launchpad).",
)
def change_credit_guardrails_job():
    change_credit_guardrails()


def daily_schedule(
    name: str,
    cron: str,
    job,
    description: str,
    *,
    days_back: int = 0,
    reminders: bool = False,
    partitioned: bool = True,
):
    """A daily schedule running `job` for the local business day (minus `days_back`); an
    unpartitioned job gets the day in its run key only."""

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        execution_timezone=TIMEZONE,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
        skip = automation_paused(database)
        if skip is not None:
            return skip
        if reminders and reminders_off(database):
            return dg.SkipReason(REMINDERS_OFF)
        partition = (
            local(context.scheduled_execution_time).date() - timedelta(days=days_back)
        ).isoformat()
        return dg.RunRequest(
            run_key=f"{job.name}:{partition}",
            partition_key=partition if partitioned else None,
            tags={ACTOR_TAG: f"schedule:{name}"},
        )

    return _schedule


credit_guardrails_daily = daily_schedule(
    "credit_guardrails_daily",
    "0 4 * * *",
    credit_guardrails_job,
    "04:00: risk dashboard and guardrails evaluation for the business day.",
)
credit_auto_pause_daily = daily_schedule(
    "credit_auto_pause_daily",
    "0 11 * * *",
    credit_auto_pause_job,
    "11:00: auto-pause overdue or over-limit retailers (never notifies a retailer twice).",
)

payment_reminders_daily = daily_schedule(
    "payment_reminders_daily",
    "0 10 * * *",
    payment_reminders_job,
    "10:00: WhatsApp reminders for debits due soon or overdue (skips while REMINDERS_ENABLED "
    "is off).",
    reminders=True,
)

order_follow_ups_daily = daily_schedule(
    "order_follow_ups_daily",
    "0 14 * * *",
    order_follow_ups_job,
    "14:00: follow up the pending orders that expired recently, once per order.",
    partitioned=False,
)

retailer_insights_daily = daily_schedule(
    "retailer_insights_daily",
    "0 3 * * *",
    retailer_insights_job,
    "03:00: insights for the business day that just ended.",
    days_back=1,
)


@dg.schedule(
    name="pending_order_expiry_every_6_hours",
    cron_schedule="0 */6 * * *",
    execution_timezone=TIMEZONE,
    job=pending_order_expiry_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 6 hours: pending orders older than the expiry (24 h) become EXPIRED.",
)
def pending_order_expiry_every_6_hours(
    context: dg.ScheduleEvaluationContext, database: DatabaseResource
):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    when = local(context.scheduled_execution_time).strftime("%Y-%m-%dT%H:%M")
    return dg.RunRequest(
        run_key=f"pending_order_expiry:{when}",
        tags={ACTOR_TAG: "schedule:pending_order_expiry_every_6_hours"},
    )


CREDIT_JOBS = [
    credit_guardrails_job,
    credit_auto_pause_job,
    payment_reminders_job,
    pending_order_expiry_job,
    order_follow_ups_job,
    failed_order_reversal_job,
    retailer_insights_job,
    pause_credit_job,
    unpause_credit_job,
    record_credit_payment_job,
    credit_adjustment_job,
    change_credit_guardrails_job,
]
CREDIT_SCHEDULES = [
    credit_guardrails_daily,
    credit_auto_pause_daily,
    payment_reminders_daily,
    pending_order_expiry_every_6_hours,
    order_follow_ups_daily,
    retailer_insights_daily,
]
