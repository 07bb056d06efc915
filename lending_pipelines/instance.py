"""The Dagster instance configuration (dagster.yaml) for local dev; deploy/dagster.yaml mirrors it.

Money-moving jobs carry the run tag `lending/serial: <job>`; the limit of one run per unique
value of that tag keeps two runs of the same job from overlapping (the database's unique keys
and row locks keep them correct even if they did).

A run whose worker dies (a crash, `kill -9`) stays STARTED for Dagster and, through that tag,
blocks every later run of its job. The default run launcher cannot check a worker's health, so
run monitoring fails any run still in flight after RUN_MAX_RUNTIME_SECONDS, and `lending dev`
fails, at start, the runs a previous crash of itself left in flight (`fail_orphaned_runs`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

SERIAL_TAG = "lending/serial"
# Far above any run's normal duration (polling: seconds; a payout date: minutes); a job that
# needs longer sets the run tag `dagster/max_runtime`.
RUN_MAX_RUNTIME_SECONDS = 3600
RUN_START_TIMEOUT_SECONDS = 180
RUN_CANCEL_TIMEOUT_SECONDS = 180
ORPHANED_RUN_MESSAGE = (
    "Marked failed at start of `lending dev`: the previous `lending dev` on this LENDING_HOME "
    "stopped (crash or kill) while this run was in flight, so its worker no longer exists."
)


# Concurrency pools: steps that call a partner's money API claim a slot of their pool across
# all runs. Every pool gets DEFAULT_POOL_LIMIT unless POOL_LIMITS says otherwise; the
# instance stores per-pool limits (`apply_pool_limits`, run by `lending dev` and by
# `lending pools apply` in a deployment).
DEFAULT_POOL_LIMIT = 1
FINERACT_POOL = "fineract_polling"
MPESA_POOL = "mpesa_b2c"
BLNK_POOL = "blnk_ledger"
STRIPE_POOL = "stripe_payouts"
POOL_LIMITS = {
    FINERACT_POOL: 1,  # one polling cycle at a time (it polls partners concurrently itself)
    MPESA_POOL: 1,  # B2C submitters, status queries, results and retries
    BLNK_POOL: 1,  # escrow releases, auto-deduct posts, Launchpad escrow actions
    STRIPE_POOL: 5,  # payout chunk workers: LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS at once
}


def apply_pool_limits(dagster_home: Path | None = None) -> dict[str, int]:
    """Store POOL_LIMITS in the instance at `dagster_home` (default: $DAGSTER_HOME)."""
    from dagster import DagsterInstance

    with (
        DagsterInstance.from_config(str(dagster_home)) if dagster_home else DagsterInstance.get()
    ) as instance:
        for pool, limit in POOL_LIMITS.items():
            instance.event_log_storage.set_concurrency_slots(pool, limit)
    return dict(POOL_LIMITS)


MAX_RUNTIME_TAG = "dagster/max_runtime"


def serial_tags(job_name: str, max_runtime_seconds: int | None = None) -> dict[str, str]:
    """Run tags that allow one run at a time of `job_name`; with `max_runtime_seconds`, run
    monitoring fails a run still going after that long (instead of RUN_MAX_RUNTIME_SECONDS)."""
    tags = {SERIAL_TAG: job_name}
    if max_runtime_seconds is not None:
        tags[MAX_RUNTIME_TAG] = str(max_runtime_seconds)
    return tags


def instance_config(storage_url_env: str = "LENDING_DAGSTER_STORAGE_URL") -> dict:
    return {
        "storage": {"postgres": {"postgres_url": {"env": storage_url_env}}},
        # Queued runs are looked at every second (Dagster's default is 5 s): a run launched in
        # the UI starts without a pause; the limits stay in `concurrency` below.
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": 1},
        },
        "concurrency": {
            "pools": {"default_limit": DEFAULT_POOL_LIMIT},
            "runs": {
                "max_concurrent_runs": 10,
                "tag_concurrency_limits": [
                    {"key": SERIAL_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
                ],
            },
        },
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": RUN_START_TIMEOUT_SECONDS,
            "cancel_timeout_seconds": RUN_CANCEL_TIMEOUT_SECONDS,
            "max_runtime_seconds": RUN_MAX_RUNTIME_SECONDS,
            "max_resume_run_attempts": 0,
            "poll_interval_seconds": 30,
            # Pool slots still held by a run that ended (failed by monitoring, crashed worker)
            # are given back after this long.
            "free_slots_after_run_end_seconds": 60,
        },
        # FreshnessPolicy on the assets with a cadence (polling, payout dates, escrow days,
        # analytics) is evaluated by the daemon.
        "freshness": {"enabled": True},
        "telemetry": {"enabled": False},
    }


def write_instance_config(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    path.write_text(yaml.safe_dump(instance_config(), sort_keys=False))
    return path


def fail_orphaned_runs(dagster_home: Path) -> list[str]:
    """Mark failed every run left starting, started or canceling in this instance.

    Only for an instance no Dagster process is using (the caller holds the dev lock and has not
    started Dagster yet): every such run's worker is gone. Returns the run ids."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    in_flight = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(filters=RunsFilter(statuses=in_flight))
        for record in records:
            instance.report_run_failed(record.dagster_run, message=ORPHANED_RUN_MESSAGE)
            # Its steps' pool slots would otherwise stay claimed and block the pool for good.
            instance.event_log_storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
        return [record.dagster_run.run_id for record in records]
