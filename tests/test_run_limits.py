"""How long a run may take before run monitoring fails it: the instance's limit, shortened or
lengthened per job with the `dagster/max_runtime` tag (deploy/README.md: what to watch)."""

from lending_pipelines.definitions import defs
from lending_pipelines.instance import MAX_RUNTIME_TAG, RUN_MAX_RUNTIME_SECONDS


def _max_runtime(job_name: str) -> int:
    tags = defs.resolve_job_def(job_name).tags
    return int(tags.get(MAX_RUNTIME_TAG, RUN_MAX_RUNTIME_SECONDS))


def test_a_polling_run_is_failed_before_the_next_tick_would_start():
    assert _max_runtime("loan_polling_job") < 10 * 60


def test_a_large_payout_date_is_not_failed_at_the_instance_default():
    assert _max_runtime("creator_payouts_job") >= 2 * 3600 > RUN_MAX_RUNTIME_SECONDS


def test_every_job_limit_is_a_whole_number_of_seconds():
    for job in defs.get_repository_def().get_all_jobs():
        if MAX_RUNTIME_TAG in job.tags:
            assert int(job.tags[MAX_RUNTIME_TAG]) > 0, job.name
