"""Each job's executor, chosen by measurement (bench/runs.py): a change shows here in review.

A step subprocess re-imports the code location (10+ s on the 2-core machine), so jobs whose
steps run one after another execute in the run process; only the payout job, whose chunk
workers pay creators in parallel, has step processes, forked from one forkserver that imported
the code location once.
"""

from lending_pipelines.definitions import defs
from lending_pipelines.settings import get_settings

PAYOUT_JOB = "creator_payouts_job"


def _jobs():
    return [
        job
        for job in defs.get_repository_def().get_all_jobs()
        if not job.name.startswith("__ASSET_JOB")
    ]


def test_jobs_whose_steps_run_one_after_another_execute_in_the_run_process():
    executors = {job.name: job.executor_def.name for job in _jobs() if job.name != PAYOUT_JOB}
    assert executors
    assert set(executors.values()) == {"in_process"}, executors


def test_payout_chunk_workers_run_in_parallel_in_processes_forked_from_a_preloaded_server():
    job = defs.resolve_job_def(PAYOUT_JOB)
    config = job.executor_def.apply_config_mapping({}).value["config"]
    assert job.executor_def.name == "multiprocess"
    assert config["start_method"] == {
        "forkserver": {"preload_modules": ["lending_pipelines.preload"]}
    }
    # every chunk worker at once (the multiprocess default is the CPU count: 2 here)
    assert config["max_concurrent"] >= get_settings().payout_max_concurrent_chunks
