"""Each job's executor, chosen by measurement (bench/runs.py): a change shows here in review.

A step subprocess costs a process start and a code-location import (seconds on the 2-core
machine), which dwarfed the work of every job. So every job executes in the run process; the
payout job's chunk workers pay in parallel as threads of their step (the work is waiting on
Stripe), with the database keeping them apart (tests/integration/test_payouts_workers.py).
"""

from lending_pipelines.definitions import defs
from lending_pipelines.settings import get_settings


def _jobs():
    return [
        job
        for job in defs.get_repository_def().get_all_jobs()
        if not job.name.startswith("__ASSET_JOB")
    ]


def test_every_job_executes_in_the_run_process():
    executors = {job.name: job.executor_def.name for job in _jobs()}
    assert "creator_payouts_job" in executors
    assert set(executors.values()) == {"in_process"}, executors


def test_the_payout_step_runs_its_chunk_workers_at_once_not_one_step_each():
    job = defs.resolve_job_def("creator_payouts_job")
    steps = {node.name for node in job.graph.node_defs}
    assert steps == {
        "eligible_creators",
        "payout_batch",
        "payout_transfers",
        "payout_transfers_every_item_paid",
        "payout_transfers_ledger_matches_transfers",
    }
    assert get_settings().payout_max_concurrent_chunks == 5  # threads of payout_transfers
