"""Payment CSV files dropped into the inbox (LENDING_PAYMENT_INBOX): one run per file, keyed by
its content hash.

Every regular file in the inbox (hidden files and `*.part` / `*.tmp` uploads in progress aside)
gets a `payment_file_job` run with run key `payment_file:<sha256>:<n>`, where n counts the runs
already made for that content: a file whose run is queued or in progress waits, and a file still
in the inbox after its run ended (the run crashed before moving it, or the same content was
dropped again) gets one more run. That run posts nothing a second time: the content hash is
unique in `payment_files`, committed with the postings, and it only moves the file. Skips while
CRON_ENABLED is off."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ..assets.collections.common import ACTOR_TAG
from ..assets.collections.jobs import payment_file_job
from ..kill_switch import automation_paused
from ..resources.collections_config import CollectionsConfig
from ..resources.database import DatabaseResource
from ..workflows.collections.payment_files import file_sha256

SHA_TAG = "lending/payment_file_sha256"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
MAX_FILES_PER_TICK = 50


def inbox_files(inbox: Path) -> list[Path]:
    if not inbox.is_dir():
        return []
    return sorted(
        p
        for p in inbox.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix not in (".part", ".tmp")
    )


@dg.sensor(
    name="payment_files_sensor",
    job=payment_file_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One payment_file_job run per CSV file in the payment inbox, keyed by content.",
)
def payment_files_sensor(
    context: dg.SensorEvaluationContext,
    database: DatabaseResource,
    collections_config: CollectionsConfig,
):
    paused = automation_paused(database)
    if paused is not None:
        return paused
    files = inbox_files(collections_config.inbox)
    if not files:
        return dg.SkipReason(f"no payment file in {collections_config.inbox}")
    requests, waiting = [], 0
    for path in files[:MAX_FILES_PER_TICK]:
        sha256 = file_sha256(path)
        runs = context.instance.get_runs(filters=dg.RunsFilter(tags={SHA_TAG: sha256}))
        if any(run.status in IN_FLIGHT for run in runs):
            waiting += 1
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"payment_file:{sha256}:{len(runs)}",
                run_config={
                    "ops": {"post_payment_file": {"config": {"path": str(path), "sha256": sha256}}}
                },
                tags={SHA_TAG: sha256, ACTOR_TAG: "sensor:payment_files_sensor"},
            )
        )
    if not requests:
        return dg.SkipReason(f"{waiting} payment file(s) already being posted")
    return requests


PAYMENT_FILE_SENSORS = [payment_files_sensor]
