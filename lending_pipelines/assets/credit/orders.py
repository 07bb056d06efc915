"""Order recovery: `pending_orders` (every 6 hours, checkouts older than the expiry become
EXPIRED), `order_follow_ups` (14:00, one WhatsApp template per recently expired order, ever),
and the op that reverses failed CREDIT orders' debits (run by
`failed_credit_orders_sensor`)."""

import dagster as dg

from ...db.credit.recovery import pending_counts
from ...resources.credit_config import CreditConfig
from ...resources.database import DatabaseResource
from ...resources.whatsapp import WhatsAppResource
from ...workflows.credit.orders import expire_orders, reverse_failed_orders, send_follow_ups
from ..metadata import table_metadata
from ..platform_tables import RETAILERS_TABLE
from .common import GROUP, OWNERS, RETRY, WORKFLOW_TAG, fail_on_failed_messages, run_actor


@dg.asset(
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    tags=WORKFLOW_TAG,
    retry_policy=RETRY,
    description="Checkouts started but not completed: PENDING ones older than the expiry "
    "(24 h) become EXPIRED.",
)
def pending_orders(
    context: dg.AssetExecutionContext, database: DatabaseResource, credit_config: CreditConfig
) -> dg.MaterializeResult:
    expired = expire_orders(
        database.get_engine(), expiry_hours=credit_config.pending_order_expiry_hours
    )
    with database.connect() as conn:
        counts = pending_counts(conn)
    context.log.info(f"pending orders: {len(expired)} expired now")
    return dg.MaterializeResult(
        metadata={
            "expired": len(expired),
            "expiry_hours": credit_config.pending_order_expiry_hours,
            "by_status": dg.MetadataValue.json(counts),
            "expired_detail": table_metadata(
                expired, ["pending_order_id", "retailer_id", "amount", "currency", "created_at"]
            ),
        }
    )


@dg.asset(
    deps=[pending_orders, RETAILERS_TABLE],
    group_name=GROUP,
    kinds={"postgres", "twilio"},
    owners=OWNERS,
    tags=WORKFLOW_TAG,
    retry_policy=RETRY,
    description="One WhatsApp follow-up per pending order that expired within the lookback "
    "(48 h), never twice (follow_up_sent_at and the outbox key order_follow_up:<id>).",
)
def order_follow_ups(
    context: dg.AssetExecutionContext,
    database: DatabaseResource,
    whatsapp: WhatsAppResource,
    credit_config: CreditConfig,
) -> dg.MaterializeResult:
    with whatsapp.get_client() as client:
        report = send_follow_ups(
            database.get_engine(),
            client,
            lookback_hours=credit_config.follow_up_lookback_hours,
            content_sid=credit_config.template("order_follow_up"),
        )
    metadata = {
        "follow_ups_queued": report.queued,
        "followed_up": table_metadata(report.changed, ["pending_order_id", "amount"]),
        **report.delivery.as_metadata(),
    }
    fail_on_failed_messages("order_follow_ups", report.delivery.failed, metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.op(
    name="reverse_failed_orders",
    tags=WORKFLOW_TAG,
    retry_policy=RETRY,
    description="Reverse the debit of every FAILED CREDIT order once (CREDIT transaction with "
    "reversal_of, debit REVERSED, audit) and tell the retailer.",
)
def reverse_failed_orders_op(
    context: dg.OpExecutionContext,
    database: DatabaseResource,
    whatsapp: WhatsAppResource,
    credit_config: CreditConfig,
) -> None:
    with whatsapp.get_client() as client:
        report = reverse_failed_orders(
            database.get_engine(),
            client,
            actor=run_actor(context),
            run_id=context.run.run_id,
            content_sid=credit_config.template("order_failed"),
        )
    metadata = {
        "reversed": len(report.changed),
        "reversals": table_metadata(
            report.changed, ["debit_id", "order_id", "retailer_id", "amount", "refund_due"]
        ),
        **report.delivery.as_metadata(),
    }
    context.add_output_metadata(metadata)
    fail_on_failed_messages("failed order reversal", report.delivery.failed, metadata)
