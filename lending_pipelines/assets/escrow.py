"""Workflow 4: escrow auto-release and wallet auto-deduct on the Blnk ledger.

Two daily assets partitioned by business day in LENDING_ESCROW_TIMEZONE (Africa/Nairobi):
  escrow_releases  02:00 — held escrows due by the end of the day (and not after "now") are
                   released from the escrow pool to the wholesaler; the schedule runs the day
                   that just ended.
  auto_deductions  23:00 — the day's share of each enabled retailer's debt moves from the
                   wallet to the repayment pool; the schedule runs the current day.
Launchpad jobs (typed config, audited with the actor and reason): release one escrow now, run
either for a date (all three dry_run by default), mark an escrow disputed. Both schedules skip
while CRON_ENABLED is
off; a failed run alerts (sensors/run_failures.py).
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import Field

from ..db.audit import record_audit
from ..db.escrow import (
    EscrowStateError,
    escrow_release_reference,
    mark_escrow_disputed,
    record_release,
    release_candidates,
    release_integrity_problems,
    releases_on,
    repayments_on,
)
from ..instance import serial_tags
from ..kill_switch import automation_paused
from ..partners.blnk import BlnkClient, BlnkError
from ..resources.blnk import BlnkResource
from ..resources.database import DatabaseResource
from ..settings import get_settings
from .escrow_runs import RunReport, release_escrows, run_auto_deduct
from .metadata import markdown_table

SETTINGS = get_settings()
TIMEZONE = SETTINGS.escrow_timezone
GROUP = "escrow"
OWNERS = ["team:finance-ops"]
ACTOR_TAG = "lending/actor"
RELEASE_SERIAL = serial_tags("escrow_release")
DEDUCT_SERIAL = serial_tags("auto_deduct")
RETRY = dg.RetryPolicy(
    max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# end_offset=1: today's business day exists as a partition (auto-deduct runs at 23:00 on it).
ESCROW_DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone=TIMEZONE, end_offset=1)


def _business_day(value: str) -> date:
    """A Launchpad date: YYYY-MM-DD, not in the future (nothing is due there yet)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise dg.Failure(f"business_date {value!r} is not a YYYY-MM-DD date") from None
    if day > _today():
        raise dg.Failure(f"business_date {value!r} is in the future ({TIMEZONE})")
    return day


def _day_end(business_date: date) -> datetime:
    """The end of a business day in the escrow timezone (exclusive), as an aware datetime."""
    start = datetime.combine(business_date, datetime.min.time(), tzinfo=ZoneInfo(TIMEZONE))
    return start + timedelta(days=1)


def _release_cutoff(business_date: date) -> datetime:
    """Escrows due by the end of the day, but never one that is not due yet right now."""
    return min(_day_end(business_date), datetime.now(UTC))


def _today() -> date:
    return datetime.now(ZoneInfo(TIMEZONE)).date()


def _run_actor(context: dg.OpExecutionContext) -> str:
    tags = context.run.tags
    if ACTOR_TAG in tags:
        return tags[ACTOR_TAG]
    if "dagster/schedule_name" in tags:
        return f"schedule:{tags['dagster/schedule_name']}"
    return f"dagster:{context.run.job_name}"


def _report_metadata(report: RunReport, moved_columns: list[str]) -> dict:
    skipped = [{"id": s.entity_id, "reason": s.reason} for s in report.skipped]
    failed = [
        {"id": f.entity_id, "error": f.error, "retryable": f.retryable} for f in report.failed
    ]
    return {
        "business_date": report.business_date.isoformat(),
        "dry_run": report.dry_run,
        "moved": len(report.moved),
        "amount_by_currency": dg.MetadataValue.json(report.amount_by_currency),
        "recovered_from_ledger": report.recovered,
        "skipped": len(report.skipped),
        "skipped_by_reason": dg.MetadataValue.json(report.skipped_by_reason),
        "failed": len(report.failed),
        "awaiting_ledger": len(report.awaiting),
        "duration_seconds": round(report.duration_seconds, 3),
        "moved_detail": markdown_table(report.moved, moved_columns),
        "skipped_detail": markdown_table(skipped, ["id", "reason"]),
        "failed_detail": markdown_table(failed, ["id", "error", "retryable"]),
        "planned_detail": markdown_table(report.planned, moved_columns),
    }


def _fail_on_errors(report: RunReport, what: str, metadata: dict) -> None:
    """A transfer that failed fails the run (after every other one was done and recorded)."""
    if report.failed:
        raise dg.Failure(
            description=(
                f"{what} {report.business_date}: {len(report.failed)} transfer(s) failed, "
                f"{len(report.moved)} succeeded"
            ),
            metadata=metadata,
            allow_retries=report.any_retryable_failure,
        )


# --- checks (evaluated inside the materialization, for its partition) ------------------------


def _check_releases(
    database: DatabaseResource, blnk: BlnkClient, business_date: date
) -> list[dg.AssetCheckResult]:
    with database.begin() as conn:
        problems = release_integrity_problems(conn)
        releases = releases_on(conn, business_date)
    mismatches, ledger_total = [], 0
    for release in releases:
        outcome = blnk.read_outcome(release["ledger_reference"])
        txn = None if outcome is None else outcome.transaction
        if txn is None:
            mismatches.append(f"{release['ledger_reference']}: no outcome in the ledger")
            continue
        ledger_total += txn.precise_amount
        found = (txn.transaction_id, txn.precise_amount, txn.source, txn.destination, txn.status)
        expected = (
            release["ledger_transaction_id"],
            release["amount"],
            release["source_balance_id"],
            release["destination_balance_id"],
            "APPLIED",
        )
        if found != expected:
            mismatches.append(f"{release['ledger_reference']}: ledger {found} vs local {expected}")
    local_total = sum(release["amount"] for release in releases)
    return [
        dg.AssetCheckResult(
            check_name="no_escrow_released_twice",
            passed=not problems,
            metadata={"problems": dg.MetadataValue.json(problems)},
        ),
        dg.AssetCheckResult(
            check_name="released_amounts_match_ledger",
            passed=not mismatches and local_total == ledger_total,
            metadata={
                "releases": len(releases),
                "released_amount": local_total,
                "ledger_amount": ledger_total,
                "mismatches": dg.MetadataValue.json(mismatches),
            },
        ),
    ]


def _check_repayments(
    database: DatabaseResource, blnk: BlnkClient, business_date: date
) -> list[dg.AssetCheckResult]:
    with database.begin() as conn:
        records = repayments_on(conn, business_date)
    applied = [r for r in records if r.status == "applied"]
    pending = [r.retailer_id for r in records if r.status == "pending"]
    mismatches = []
    for repayment in applied:
        outcome = blnk.read_outcome(repayment.ledger_reference)
        txn = None if outcome is None else outcome.transaction
        found = (
            None
            if txn is None
            else (txn.transaction_id, txn.precise_amount, txn.source, txn.destination, txn.status)
        )
        expected = (
            repayment.ledger_transaction_id,
            repayment.amount,
            repayment.source_balance_id,
            repayment.destination_balance_id,
            "APPLIED",
        )
        if found != expected:
            mismatches.append(f"{repayment.ledger_reference}: ledger {found} vs local {expected}")
    distinct = len({r.ledger_transaction_id for r in applied}) == len(applied)
    return [
        dg.AssetCheckResult(
            check_name="repayments_match_ledger_one_to_one",
            passed=not mismatches and not pending and distinct,
            metadata={
                "applied": len(applied),
                "pending": dg.MetadataValue.json(pending),
                "mismatches": dg.MetadataValue.json(mismatches),
                "distinct_ledger_transactions": distinct,
            },
        )
    ]


# --- assets ---------------------------------------------------------------------------------------


@dg.asset(
    partitions_def=ESCROW_DAYS,
    group_name=GROUP,
    kinds={"blnk", "postgres"},
    owners=OWNERS,
    tags={"lending/workflow": "escrow"},
    pool="blnk_ledger",
    retry_policy=RETRY,
    check_specs=[
        dg.AssetCheckSpec("no_escrow_released_twice", asset="escrow_releases"),
        dg.AssetCheckSpec("released_amounts_match_ledger", asset="escrow_releases"),
    ],
    description="Held escrows due by the end of the business day, released from the escrow "
    "pool to the wholesaler's Blnk balance (reference escrow-release:<escrow id>).",
)
def escrow_releases(
    context: dg.AssetExecutionContext, database: DatabaseResource, blnk: BlnkResource
) -> dg.MaterializeResult:
    business_date = date.fromisoformat(context.partition_key)
    report = release_escrows(
        database,
        blnk.get_client(),
        business_date=business_date,
        cutoff=_release_cutoff(business_date),
        actor=_run_actor(context.op_execution_context),
        reason=f"auto-release: due by the end of {business_date} ({TIMEZONE})",
        run_id=context.run.run_id,
        dry_run=False,
        log=context.log,
    )
    columns = ["escrow_id", "order_id", "wholesaler_id", "amount", "currency", "recovered"]
    metadata = _report_metadata(report, columns)
    _fail_on_errors(report, "escrow release", metadata)
    return dg.MaterializeResult(
        metadata=metadata, check_results=_check_releases(database, blnk.get_client(), business_date)
    )


@dg.asset(
    partitions_def=ESCROW_DAYS,
    group_name=GROUP,
    kinds={"blnk", "postgres"},
    owners=OWNERS,
    tags={"lending/workflow": "escrow"},
    pool="blnk_ledger",
    retry_policy=RETRY,
    check_specs=[dg.AssetCheckSpec("repayments_match_ledger_one_to_one", asset="auto_deductions")],
    description="The business day's auto-deduct: a share of each enabled retailer's debt moved "
    "from the wallet to the repayment pool (reference auto-deduct:<retailer>:<date>), capped "
    "by the daily maximum and the minimum wallet balance.",
)
def auto_deductions(
    context: dg.AssetExecutionContext, database: DatabaseResource, blnk: BlnkResource
) -> dg.MaterializeResult:
    business_date = date.fromisoformat(context.partition_key)
    report = run_auto_deduct(
        database,
        blnk.get_client(),
        SETTINGS,
        business_date=business_date,
        actor=_run_actor(context.op_execution_context),
        run_id=context.run.run_id,
        dry_run=False,
        log=context.log,
    )
    columns = ["retailer_id", "amount", "currency", "limited_by", "recovered"]
    metadata = {
        **_report_metadata(report, columns),
        "retailers_deducted": len(report.moved),
    }
    _fail_on_errors(report, "auto-deduct", metadata)
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=_check_repayments(database, blnk.get_client(), business_date),
    )


escrow_release_job = dg.define_asset_job(
    "escrow_release_job",
    selection=[escrow_releases],
    partitions_def=ESCROW_DAYS,
    tags=RELEASE_SERIAL,
    description="Release the escrows due on a business day (one partition per day).",
)
auto_deduct_job = dg.define_asset_job(
    "auto_deduct_job",
    selection=[auto_deductions],
    partitions_def=ESCROW_DAYS,
    tags=DEDUCT_SERIAL,
    description="Auto-deduct from retailer wallets for a business day (one partition per day).",
)


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
    metadata = _report_metadata(report, columns)
    context.add_output_metadata(metadata)
    _fail_on_errors(report, what, metadata)


@dg.op(tags={"lending/workflow": "escrow"})
def release_escrow_now(
    context: dg.OpExecutionContext,
    config: ReleaseEscrowNowConfig,
    database: DatabaseResource,
    blnk: BlnkResource,
) -> None:
    """Release one held escrow immediately, whatever its auto-release date."""
    actor = config.checked_actor()
    report = release_escrows(
        database,
        blnk.get_client(),
        business_date=_today(),
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


@dg.op(tags={"lending/workflow": "escrow"})
def run_escrow_auto_release(
    context: dg.OpExecutionContext,
    config: RunForDateConfig,
    database: DatabaseResource,
    blnk: BlnkResource,
) -> None:
    """Run the auto-release for one business day now (dry run by default)."""
    business_date = _business_day(config.business_date)
    report = release_escrows(
        database,
        blnk.get_client(),
        business_date=business_date,
        cutoff=_release_cutoff(business_date),
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


@dg.op(tags={"lending/workflow": "escrow"})
def run_auto_deduct_now(
    context: dg.OpExecutionContext,
    config: RunForDateConfig,
    database: DatabaseResource,
    blnk: BlnkResource,
) -> None:
    """Run the auto-deduct for one business day now (dry run by default)."""
    business_date = _business_day(config.business_date)
    report = run_auto_deduct(
        database,
        blnk.get_client(),
        SETTINGS,
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


@dg.op(tags={"lending/workflow": "escrow"})
def dispute_escrow(
    context: dg.OpExecutionContext,
    config: DisputeEscrowConfig,
    database: DatabaseResource,
    blnk: BlnkResource,
) -> None:
    """Freeze a held escrow as disputed so no release moves it. The ledger is asked first: a
    release that reached Blnk but not our records is recorded, and the dispute refused."""
    actor = config.checked_actor()
    reference = escrow_release_reference(config.escrow_id)
    try:
        outcome = blnk.get_client().read_outcome(reference)
    except BlnkError as exc:
        raise dg.Failure(f"cannot check {reference} in the ledger: {exc}") from exc
    if outcome is not None and outcome.awaiting:
        raise dg.Failure(f"{reference} is queued in the ledger; dispute it once it is settled")
    released = None if outcome is None else outcome.transaction
    with database.begin() as conn:
        if released is not None and released.status == "APPLIED":
            held = [
                candidate
                for candidate in release_candidates(conn, escrow_id=config.escrow_id)
                if candidate.status == "held"
            ]
            if held and outcome is not None:
                difference = outcome.differences(
                    amount=held[0].amount,
                    currency=held[0].currency,
                    source=str(held[0].source_balance_id),
                    destination=str(held[0].destination_balance_id),
                )
                if difference:  # not our release: an alert, not an update
                    raise dg.Failure(
                        f"{reference} in the ledger ({released.transaction_id}) is not this "
                        f"escrow's release: {'; '.join(difference)}; nothing recorded"
                    )
                record_release(
                    conn,
                    held[0],
                    business_date=_today(),
                    transaction_id=released.transaction_id,
                    recovered=True,
                    actor=actor,
                    reason=f"found released in the ledger while disputing: {config.reason}",
                    run_id=context.run.run_id,
                )
        else:
            try:
                mark_escrow_disputed(
                    conn,
                    config.escrow_id,
                    actor=actor,
                    reason=config.reason,
                    run_id=context.run.run_id,
                )
            except EscrowStateError as exc:
                raise dg.Failure(str(exc)) from exc
    if released is not None and released.status == "APPLIED":
        raise dg.Failure(
            f"escrow {config.escrow_id} was already released in the ledger "
            f"({released.transaction_id}); recorded as released, not disputed"
        )
    context.add_output_metadata({"escrow_id": config.escrow_id, "status": "disputed"})


@dg.job(tags=RELEASE_SERIAL, description="Release one held escrow now (Launchpad).")
def release_escrow_now_job():
    release_escrow_now()


@dg.job(tags=RELEASE_SERIAL, description="Run the escrow auto-release for a date (Launchpad).")
def escrow_auto_release_now_job():
    run_escrow_auto_release()


@dg.job(tags=DEDUCT_SERIAL, description="Run the wallet auto-deduct for a date (Launchpad).")
def auto_deduct_now_job():
    run_auto_deduct_now()


@dg.job(tags=RELEASE_SERIAL, description="Mark a held escrow disputed (Launchpad).")
def dispute_escrow_job():
    dispute_escrow()


# --- schedules ------------------------------------------------------------------------------------


def _scheduled_local(context: dg.ScheduleEvaluationContext) -> datetime:
    when = context.scheduled_execution_time or datetime.now(UTC)
    return when.astimezone(ZoneInfo(TIMEZONE))


@dg.schedule(
    name="escrow_auto_release_daily",
    cron_schedule="0 2 * * *",
    execution_timezone=TIMEZONE,
    job=escrow_release_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="02:00: release the escrows due by the end of the day that just ended.",
)
def escrow_auto_release_daily(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    partition = (_scheduled_local(context).date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(
        run_key=f"escrow_releases:{partition}",
        partition_key=partition,
        tags={ACTOR_TAG: "schedule:escrow_auto_release_daily"},
    )


@dg.schedule(
    name="auto_deduct_daily",
    cron_schedule="0 23 * * *",
    execution_timezone=TIMEZONE,
    job=auto_deduct_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="23:00: auto-deduct for the current business day.",
)
def auto_deduct_daily(context: dg.ScheduleEvaluationContext, database: DatabaseResource):
    skip = automation_paused(database)
    if skip is not None:
        return skip
    partition = _scheduled_local(context).date().isoformat()
    return dg.RunRequest(
        run_key=f"auto_deductions:{partition}",
        partition_key=partition,
        tags={ACTOR_TAG: "schedule:auto_deduct_daily"},
    )


ESCROW_ASSETS = [escrow_releases, auto_deductions]
ESCROW_JOBS = [
    escrow_release_job,
    auto_deduct_job,
    release_escrow_now_job,
    escrow_auto_release_now_job,
    auto_deduct_now_job,
    dispute_escrow_job,
]
ESCROW_SCHEDULES = [escrow_auto_release_daily, auto_deduct_daily]
