"""Run overhead: every scheduled job launched through a real Dagster instance, as the daemon does.

The benchmark starts what `make dev` starts, on free ports and in scratch places: a scratch
database on the embedded (or configured) PostgreSQL server, migrated and seeded with the demo
data; the partner-API sandbox in its own process; a temporary DAGSTER_HOME (default run
launcher; the default run coordinator launches a submitted run at once, where the daemon would
dequeue it); the code location `lending_pipelines.definitions` loaded in its own gRPC server,
as `dagster dev` / the daemon load it. Each job is then submitted with
`instance.submit_run` (the run worker and the job's real executor start as in production) and
waited for. Per job it prints:

* `wall_s`: from submit to the run's end (what a 10-minute schedule has to fit);
* `work_s`: the time its steps executed (union of step start..end from the run's event log, so
  parallel chunk steps count once): the work, without process start-up and definitions loading;
* `reported_s`: the seconds the assets report in their materialization metadata
  (`cycle_seconds` of loan_tracking, `duration_seconds` of the escrow assets), a part of work;
* `overhead_s` = wall - work, and `ratio` = wall / work.

Every job is run `--repeats` times (default 3; re-runs are idempotent: they move nothing twice)
and the medians are printed. Last line: `polling_run_seconds: N` (median wall time of
`loan_polling_job`; target <= 15 s on an idle machine, and every job's overhead <= 10 s).

    uv run python -m bench.runs [--repeats 3] [--jobs loan_polling_job,auto_deduct_job]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCATION = "lending_pipelines"
MODULE = "lending_pipelines.definitions"
WORK_KEYS = ("cycle_seconds", "duration_seconds", "seconds")

# In schedule order: what the daemon launches (plus the sensor-launched results job).
JOBS = [
    "loan_polling_job",
    "disbursement_retry_job",
    "mpesa_results_job",
    "creator_payouts_job",
    "payout_retry_job",
    "escrow_release_job",
    "auto_deduct_job",
    "retailer_insights_job",
    "credit_guardrails_job",
    "payment_reminders_job",
    "credit_auto_pause_job",
    "order_follow_ups_job",
    "pending_order_expiry_job",
    "collections_daily_job",
    "collection_reminders_job",
    "analytics_refresh_job",
]


@dataclass(frozen=True)
class RunTiming:
    job: str
    wall: float
    work: float
    reported: float
    status: str


def serve_sandbox(port: int) -> None:
    import uvicorn

    from lending_dev.sandbox.app import build_app

    uvicorn.run(build_app(faults={}), host="127.0.0.1", port=port, log_level="warning")


def wait_until_up(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_admin/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"sandbox on {url} did not start")


def prepare_environment(database_url: str, sandbox_url: str, dagster_home: Path) -> None:
    """The variables `make dev` sets, pointing at this benchmark's database and sandbox; the
    run workers and step processes inherit them through the code server."""
    from lending_dev.devenv import DEV_ENVIRONMENT
    from lending_dev.sandbox.server import free_port

    os.environ.update(
        {
            "LENDING_DATABASE_URL": database_url,
            "LENDING_SANDBOX_URL": sandbox_url,
            # no receiver is needed: M-Pesa callbacks that find nobody are Daraja's problem
            "LENDING_WEBHOOKS_URL": f"http://127.0.0.1:{free_port()}",
            "LENDING_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "LENDING_MPESA_CALLBACK_TOKEN": secrets.token_urlsafe(24),
            "DAGSTER_HOME": str(dagster_home),
            **DEV_ENVIRONMENT,
        }
    )
    # Submitted runs launch at once (the daemon's dequeue tick is not what is measured here).
    (dagster_home / "dagster.yaml").write_text(
        "run_coordinator:\n"
        "  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
        "telemetry:\n"
        "  enabled: false\n"
    )


def seed(database_url: str) -> None:
    from lending_dev.seed import seed_all
    from lending_pipelines.db import migrate
    from lending_pipelines.settings import get_settings

    get_settings.cache_clear()
    migrate.upgrade(database_url)
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        seed_all(conn, get_settings())
    engine.dispose()


def partition_keys() -> dict[str, str]:
    """The partition each partitioned job's schedule would launch now: the latest business day
    of its partitions (escrow, credit, collections), the seeded payout date for payouts."""
    from lending_pipelines.definitions import defs

    keys = {}
    for name in JOBS:
        partitions = defs.resolve_job_def(name).partitions_def
        if partitions is not None:
            keys[name] = partitions.get_last_partition_key()
    return keys


def submit(instance, workspace, job_name: str, partition: str | None) -> str:
    """Create and submit a run the way the scheduler does (`dagster job launch` does the same)."""
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.storage.tags import PARTITION_NAME_TAG

    location = workspace.get_code_location(LOCATION)
    (repo,) = location.get_repositories().values()
    remote_job = location.get_job(
        JobSubsetSelector(
            location_name=LOCATION, repository_name=repo.name, job_name=job_name, op_selection=None
        )
    )
    plan = location.get_execution_plan(
        remote_job, {}, step_keys_to_execute=None, known_state=None, instance=instance
    ).execution_plan_snapshot
    tags = {**remote_job.tags, **({PARTITION_NAME_TAG: partition} if partition else {})}
    run = instance.create_run(
        job_name=job_name,
        run_id=None,
        run_config={},
        resolved_op_selection=None,
        step_keys_to_execute=plan.step_keys_to_execute,
        op_selection=None,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        tags=tags,
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=None,
        asset_check_selection=None,
        asset_graph=repo.asset_graph,
    )
    return instance.submit_run(run.run_id, workspace).run_id


def wait(instance, run_id: str, timeout: float) -> tuple[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.is_finished:
            return run.status.value, time.time()
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} not finished within {timeout}s")


def work_seconds(instance, run_id: str) -> tuple[float, float]:
    """(time the steps executed, seconds the assets report in their metadata)."""
    from dagster import DagsterEventType

    records = instance.all_logs(run_id)
    reported = 0.0
    for record in records:
        event = record.dagster_event
        if event is None or event.event_type != DagsterEventType.ASSET_MATERIALIZATION:
            continue
        metadata = event.step_materialization_data.materialization.metadata
        for key in WORK_KEYS:
            if key in metadata:
                reported += float(metadata[key].value)
                break
    intervals: dict[str, list[float]] = {}
    for record in records:
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            intervals[event.step_key] = [record.timestamp, record.timestamp]
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            intervals.setdefault(event.step_key, [record.timestamp, record.timestamp])[1] = (
                record.timestamp
            )
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals.values()):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total, reported


def run_job(instance, workspace, job: str, partition: str | None, timeout: float) -> RunTiming:
    started = time.time()
    run_id = submit(instance, workspace, job, partition)
    status, _ = wait(instance, run_id, timeout)
    stats = instance.get_run_stats(run_id)
    ended = stats.end_time or time.time()
    work, reported = work_seconds(instance, run_id)
    return RunTiming(job, ended - started, work, reported, status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    jobs = [job for job in args.jobs.split(",") if job]

    # The sandbox, code server, run workers and dbt inherit stdout: their logs go to stderr, so that
    # stdout is the report alone and its last line `polling_run_seconds`.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    from lending_dev.sandbox.server import free_port
    from lending_pipelines.db.server import drop_database, ensure_database, server_url
    from lending_pipelines.settings import Settings

    url = server_url(Settings.from_env()).set(database=f"lending_bench_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    database_url = url.render_as_string(hide_password=False)
    port = free_port()
    sandbox = multiprocessing.get_context("spawn").Process(
        target=serve_sandbox, args=(port,), daemon=True
    )
    sandbox.start()
    home = tempfile.TemporaryDirectory(prefix="lending-bench-dagster-")
    try:
        sandbox_url = f"http://127.0.0.1:{port}"
        wait_until_up(sandbox_url)
        prepare_environment(database_url, sandbox_url, Path(home.name))
        seed(database_url)
        keys = partition_keys()

        from dagster import DagsterInstance
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import ModuleTarget

        target = ModuleTarget(
            module_name=MODULE,
            attribute=None,
            working_directory=str(PROJECT_ROOT),
            location_name=LOCATION,
        )
        with (
            DagsterInstance.get() as instance,
            WorkspaceProcessContext(instance, target) as context,
        ):
            workspace = context.create_request_context()
            errors = workspace.get_code_location_error(LOCATION)
            if errors:
                raise SystemExit(f"code location failed to load: {errors.to_string()}")
            timings: dict[str, list[RunTiming]] = {job: [] for job in jobs}
            for _ in range(args.repeats):
                for job in jobs:
                    timing = run_job(instance, workspace, job, keys.get(job), args.timeout)
                    timings[job].append(timing)
                    print(
                        f"  {job}: {timing.status}, wall {timing.wall:.2f} s, "
                        f"work {timing.work:.2f} s (reported {timing.reported:.2f} s)",
                        file=sys.stderr,
                    )
        report(timings, args.repeats, out)
    finally:
        sandbox.terminate()
        sandbox.join(timeout=10)
        home.cleanup()
        from lending_pipelines.db.engine import dispose_engines

        dispose_engines()
        drop_database(url)


def report(timings: dict[str, list[RunTiming]], repeats: int, out) -> None:
    def emit(line: str) -> None:
        print(line, file=out, flush=True)

    emit(f"median of {repeats} run(s) per job, launched through a DagsterInstance")
    emit(
        f"{'job':<24} {'status':<8} {'wall_s':>7} {'work_s':>7} {'overhead_s':>10} "
        f"{'ratio':>6} {'reported_s':>10}"
    )
    for job, runs in timings.items():
        wall = statistics.median(t.wall for t in runs)
        work = statistics.median(t.work for t in runs)
        reported = statistics.median(t.reported for t in runs)
        statuses = {t.status for t in runs}
        status = "SUCCESS" if statuses == {"SUCCESS"} else "/".join(sorted(statuses))
        ratio = wall / work if work > 0 else float("inf")
        emit(
            f"{job:<24} {status:<8} {wall:>7.2f} {work:>7.2f} {wall - work:>10.2f} {ratio:>6.1f} "
            f"{reported:>10.2f}"
        )
    polling = timings.get("loan_polling_job")
    if polling:
        emit(f"polling_run_seconds: {statistics.median(t.wall for t in polling):.2f}")


if __name__ == "__main__":
    main()
