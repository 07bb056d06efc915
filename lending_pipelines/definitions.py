"""The single Definitions object of the `lending_pipelines` code location.

Executors, chosen by measurement (bench/runs.py): every step subprocess re-imports this module
(10+ s on a 2-core machine), which dwarfed the work of a polling run. So jobs whose steps run
one after another execute in the run process (`in_process_executor`, the default below); a
crash there ends the run, and the next run reconciles from the stored intents (outbox), as it
would after a crashed step process. The payout job alone keeps step processes: its chunk
workers pay creators in parallel (DynamicOut), each in its own process so that one worker's
crash leaves the other chunks' in-flight Stripe calls to finish and record; they fork from a
forkserver that imported this module once, and all of them run at once.
"""

from dagster import Definitions, in_process_executor, multiprocess_executor
from dagster_shared.record import replace

from .assets.analytics import (
    ANALYTICS_ASSETS,
    ANALYTICS_CHECKS,
    ANALYTICS_JOBS,
    ANALYTICS_SCHEDULES,
)
from .assets.escrow import ESCROW_ASSETS, ESCROW_JOBS, ESCROW_SCHEDULES
from .assets.loans import LOANS_ASSET_CHECKS, LOANS_ASSETS
from .assets.loans_automation import LOANS_JOBS, LOANS_SCHEDULES
from .assets.payouts import PAYOUT_ASSETS, PAYOUT_CHECKS, PAYOUT_JOBS, PAYOUT_SCHEDULES
from .resource_defs import build_resources
from .sensors.mpesa_results import LOANS_RESULT_SENSORS
from .sensors.run_failures import RUN_FAILURE_SENSORS
from .sensors.whatsapp_status import WHATSAPP_SENSORS
from .settings import get_settings

settings = get_settings()

# Step processes fork from one server that imported the code location once (not spawned, each
# re-importing it); every chunk worker plus one runs at once (the default is the CPU count).
parallel_executor = multiprocess_executor.configured(
    {
        "max_concurrent": max(2, settings.payout_max_concurrent_chunks + 1),
        "start_method": {"forkserver": {"preload_modules": ["lending_pipelines.preload"]}},
    }
)
PARALLEL_JOBS = {"creator_payouts_job"}


def _with_executor(job):
    if job.name not in PARALLEL_JOBS:
        return job  # the Definitions' default executor
    if hasattr(job, "with_executor_def"):
        return job.with_executor_def(parallel_executor)
    return replace(job, executor_def=parallel_executor)  # an unresolved asset job


JOBS = [_with_executor(job) for job in (*ESCROW_JOBS, *PAYOUT_JOBS, *LOANS_JOBS, *ANALYTICS_JOBS)]
_BY_NAME = {job.name: job for job in JOBS}


def _targeting_jobs(schedule):
    """The schedule launching the job object given to Definitions (one definition per name)."""
    if schedule.has_job and schedule.job_name in PARALLEL_JOBS:
        return schedule.with_updated_job(_BY_NAME[schedule.job_name])
    return schedule


defs = Definitions(
    assets=[*ESCROW_ASSETS, *PAYOUT_ASSETS, *LOANS_ASSETS, *ANALYTICS_ASSETS],
    asset_checks=[*PAYOUT_CHECKS, *LOANS_ASSET_CHECKS, *ANALYTICS_CHECKS],
    jobs=JOBS,
    schedules=[
        _targeting_jobs(schedule)
        for schedule in (
            *ESCROW_SCHEDULES,
            *PAYOUT_SCHEDULES,
            *LOANS_SCHEDULES,
            *ANALYTICS_SCHEDULES,
        )
    ],
    sensors=[*LOANS_RESULT_SENSORS, *RUN_FAILURE_SENSORS, *WHATSAPP_SENSORS],
    resources=build_resources(settings),
    executor=in_process_executor,
)
