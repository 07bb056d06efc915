"""Launchpad operations (typed config, audited with the actor and reason): release one escrow
now, run either run for a date (dry run by default), mark an escrow disputed."""

import dagster as dg
from pydantic import Field

from ...db.audit import record_audit
from ...instance import BLNK_POOL
from ...resources.blnk import BlnkResource
from ...resources.database import DatabaseResource
from ...resources.escrow_config import EscrowConfig
from ...workflows.escrow.auto_deduct import run_auto_deduct
from ...workflows.escrow.dispute import DisputeRefused
from ...workflows.escrow.dispute import dispute_escrow as mark_disputed
from ...workflows.escrow.release import release_escrows
from ...workflows.escrow.report import RunReport
from .common import fail_on_errors, report_metadata
from .partitions import business_day, release_cutoff, today

# --- Launchpad operations -----------------------------------------------------------------------


class ActorConfig(dg.Config):
    actor: str = Field(description="Who asks for this (e-mail); written to the audit log.")
    reason: str = Field(description="Why; written to the audit log.")

    def checked_actor(self) -> str:
        if not self.actor.strip() or not self.reason.strip():
            raise dg.Failure("actor and reason are required for the audit log")
        return self.actor.strip()


class ReleaseEscrowNowConfig(ActorConfig):
    escrow_id: int = Field(description="The held escrow to release now, due or not.")
    dry_run: bool = Field(
        default=True, description="Report what would move; move nothing. Set false to move money."
    )


class RunForDateConfig(ActorConfig):
    business_date: str = Field(description="Business day YYYY-MM-DD in the escrow timezone.")
    dry_run: bool = Field(
        default=True, description="Report what would move; move nothing. Set false to move money."
    )


class DisputeEscrowConfig(ActorConfig):
    escrow_id: int = Field(description="The held escrow to freeze as disputed.")


def _audit_manual_run(
    database: DatabaseResource, context, action: str, entity_id: str, details: dict, config
) -> None:
    with database.begin() as conn:
        record_audit(
            conn,
            actor=config.checked_actor(),
            action=action,
            entity="escrow_workflow",
            entity_id=entity_id,
            new_value=details,
            reason=config.reason,
            run_id=context.run.run_id,
        )


def _emit(context, report: RunReport, what: str, columns: list[str]) -> None:
    metadata = report_metadata(report, columns)
    context.add_output_metadata(metadata)
    fail_on_errors(report, what, metadata)


@dg.op(tags={"lending/workflow": "escrow"}, pool=BLNK_POOL)
def release_escrow_now(
    context: dg.OpExecutionContext,
    config: ReleaseEscrowNowConfig,
    database: DatabaseResource,
    blnk: BlnkResource,
) -> None:
    """Release one held escrow immediately, whatever its auto-release date."""
    actor = config.checked_actor()
    report = release_escrows(
        database.get_engine(),
        blnk.get_client(),
        business_date=today(),
        escrow_id=config.escrow_id,
        actor=actor,
        reason=config.reason,
        run_id=context.run.run_id,
        dry_run=config.dry_run,
        log=context.log,
    )
    if not report.moved and not report.planned and not report.failed:
        why = report.skipped[0].reason if report.skipped else "it does not exist"
        raise dg.Failure(f"escrow {config.escrow_id} cannot be released: {why}")
    if config.dry_run:
        _audit_manual_run(
            database,
            context,
            "escrow.release_now.dry_run",
            str(config.escrow_id),
            {"planned": report.planned},
            config,
        )
    _emit(context, report, "release escrow now", ["escrow_id", "amount", "currency", "recovered"])


@dg.op(tags={"lending/workflow": "escrow"}, pool=BLNK_POOL)
def run_escrow_auto_release(
    context: dg.OpExecutionContext,
    config: RunForDateConfig,
    database: DatabaseResource,
    blnk: BlnkResource,
) -> None:
    """Run the auto-release for one business day now (dry run by default)."""
    business_date = business_day(config.business_date)
    report = release_escrows(
        database.get_engine(),
        blnk.get_client(),
        business_date=business_date,
        cutoff=release_cutoff(business_date),
        actor=config.checked_actor(),
        reason=config.reason,
        run_id=context.run.run_id,
        dry_run=config.dry_run,
        log=context.log,
    )
    _audit_manual_run(
        database,
        context,
        "escrow.auto_release.manual_run",
        business_date.isoformat(),
        {
            "dry_run": config.dry_run,
            "released": len(report.moved),
            "planned": len(report.planned),
            "skipped": len(report.skipped),
        },
        config,
    )
    _emit(context, report, "escrow release", ["escrow_id", "wholesaler_id", "amount", "currency"])


@dg.op(tags={"lending/workflow": "escrow"}, pool=BLNK_POOL)
def run_auto_deduct_now(
    context: dg.OpExecutionContext,
    config: RunForDateConfig,
    database: DatabaseResource,
    blnk: BlnkResource,
    escrow_config: EscrowConfig,
) -> None:
    """Run the auto-deduct for one business day now (dry run by default)."""
    business_date = business_day(config.business_date)
    report = run_auto_deduct(
        database.get_engine(),
        blnk.get_client(),
        wallet_currency=escrow_config.wallet_currency,
        default_percentage=escrow_config.default_percentage,
        default_minimum=escrow_config.min_wallet_balance_minor,
        business_date=business_date,
        actor=config.checked_actor(),
        run_id=context.run.run_id,
        dry_run=config.dry_run,
        log=context.log,
        reason=config.reason,
    )
    _audit_manual_run(
        database,
        context,
        "auto_deduct.manual_run",
        business_date.isoformat(),
        {
            "dry_run": config.dry_run,
            "deducted": len(report.moved),
            "planned": len(report.planned),
            "skipped": len(report.skipped),
        },
        config,
    )
    _emit(context, report, "auto-deduct", ["retailer_id", "amount", "currency", "limited_by"])


@dg.op(tags={"lending/workflow": "escrow"}, pool=BLNK_POOL)
def dispute_escrow(
    context: dg.OpExecutionContext,
    config: DisputeEscrowConfig,
    database: DatabaseResource,
    blnk: BlnkResource,
) -> None:
    """Freeze a held escrow as disputed so no release moves it. The ledger is asked first: a
    release that reached Blnk but not our records is recorded, and the dispute refused."""
    try:
        mark_disputed(
            database.get_engine(),
            blnk.get_client(),
            escrow_id=config.escrow_id,
            actor=config.checked_actor(),
            reason=config.reason,
            run_id=context.run.run_id,
            business_date=today(),
        )
    except DisputeRefused as exc:
        raise dg.Failure(str(exc)) from exc
    context.add_output_metadata({"escrow_id": config.escrow_id, "status": "disputed"})
