"""Launchpad operations on retailer credit (typed config; `actor` and `reason` required, each
change and its audit entry in one transaction): pause / unpause credit, record a payment,
debit / credit adjustment, change a retailer's guardrails. Bad input fails the run with a
message naming the field and the value, and changes nothing."""

from datetime import date
from functools import partial

import dagster as dg
from pydantic import Field

from ...db.credit import manual
from ...resources.database import DatabaseResource
from ...workflows.credit.manual import CreditOperationError, Operator, run_operation
from .common import WORKFLOW_TAG


class ActorConfig(dg.Config):
    actor: str = Field(description="Who asks for this (e-mail); written to the audit log.")
    reason: str = Field(description="Why; written to the audit log.")

    def operator(self, context: dg.OpExecutionContext) -> Operator:
        if not self.actor.strip():
            raise dg.Failure(f"actor is {self.actor!r}: required for the audit log")
        if not self.reason.strip():
            raise dg.Failure(f"reason is {self.reason!r}: required for the audit log")
        return Operator(self.actor.strip(), self.reason.strip(), context.run.run_id)


class RetailerConfig(ActorConfig):
    retailer_id: str = Field(description="The retailer (lending.retailers.id).")
    dry_run: bool = Field(default=False, description="Report the change; change nothing.")


class PaymentConfig(ActorConfig):
    credit_transaction_id: int = Field(description="The debit the payment is against.")
    amount: int = Field(description="Paid amount in minor units (paise for INR), > 0.")
    currency: str = Field(description="Currency of the payment; must be the debit's.")
    dry_run: bool = Field(default=True, description="Report the change; set false to record.")


class AdjustmentConfig(ActorConfig):
    retailer_id: str = Field(description="The retailer (lending.retailers.id).")
    direction: str = Field(description="DEBIT (a new charge) or CREDIT (reduces what is owed).")
    amount: int = Field(description="Amount in minor units, > 0.")
    currency: str = Field(description="Must be the retailer's credit currency.")
    due_date: str | None = Field(default=None, description="YYYY-MM-DD, for a DEBIT adjustment.")
    dry_run: bool = Field(default=True, description="Report the change; set false to record.")


class GuardrailsConfig(ActorConfig):
    retailer_id: str = Field(description="The retailer (lending.retailers.id).")
    max_order_value: int | None = Field(default=None, description="New max order value (minor).")
    max_outstanding_days: int | None = Field(default=None, description="New max outstanding days.")


def _run(context: dg.OpExecutionContext, database: DatabaseResource, operation) -> dict:
    try:
        outcome = run_operation(database.get_engine(), operation)
    except CreditOperationError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.add_output_metadata(
        {
            "dry_run": bool(outcome.get("dry_run")),
            "old": dg.MetadataValue.json(outcome.get("old")),
            "new": dg.MetadataValue.json(outcome.get("new")),
        }
    )
    return outcome


def _set_status(
    context: dg.OpExecutionContext, config: RetailerConfig, database: DatabaseResource, status: str
) -> None:
    _run(
        context,
        database,
        partial(
            manual.set_credit_status,
            retailer_id=config.retailer_id,
            status=status,
            operator=config.operator(context),
            dry_run=config.dry_run,
        ),
    )


@dg.op(tags=WORKFLOW_TAG)
def pause_credit(
    context: dg.OpExecutionContext, config: RetailerConfig, database: DatabaseResource
):
    """ACTIVE → PAUSED: CREDIT orders are refused, COD still allowed."""
    _set_status(context, config, database, "PAUSED")


@dg.op(tags=WORKFLOW_TAG)
def unpause_credit(
    context: dg.OpExecutionContext, config: RetailerConfig, database: DatabaseResource
):
    """PAUSED → ACTIVE (the next guardrails run pauses again if a guardrail is still broken)."""
    _set_status(context, config, database, "ACTIVE")


@dg.op(tags=WORKFLOW_TAG)
def record_credit_payment(
    context: dg.OpExecutionContext, config: PaymentConfig, database: DatabaseResource
):
    """A payment against one debit (partial payments allowed, overpayments refused)."""
    operator = config.operator(context)
    _run(
        context,
        database,
        partial(
            manual.record_payment,
            credit_transaction_id=config.credit_transaction_id,
            amount=config.amount,
            currency=config.currency,
            operator=operator,
            dry_run=config.dry_run,
        ),
    )


@dg.op(tags=WORKFLOW_TAG)
def adjust_credit(
    context: dg.OpExecutionContext, config: AdjustmentConfig, database: DatabaseResource
):
    """A debit adjustment (new charge) or a credit adjustment (settles oldest charges first)."""
    operator = config.operator(context)
    due = None
    if config.due_date is not None:
        try:
            due = date.fromisoformat(config.due_date)
        except ValueError:
            raise dg.Failure(f"due_date is {config.due_date!r}, expected YYYY-MM-DD") from None
    _run(
        context,
        database,
        partial(
            manual.adjust,
            retailer_id=config.retailer_id,
            direction=config.direction,
            amount=config.amount,
            currency=config.currency,
            due_date=due,
            operator=operator,
            dry_run=config.dry_run,
        ),
    )


@dg.op(tags=WORKFLOW_TAG)
def change_credit_guardrails(
    context: dg.OpExecutionContext, config: GuardrailsConfig, database: DatabaseResource
):
    """Change a retailer's max_order_value and/or max_outstanding_days."""
    operator = config.operator(context)
    _run(
        context,
        database,
        partial(
            manual.change_guardrails,
            retailer_id=config.retailer_id,
            max_order_value=config.max_order_value,
            max_outstanding_days=config.max_outstanding_days,
            operator=operator,
        ),
    )
