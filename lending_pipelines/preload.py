"""What the payout job's forkserver imports before it forks a process per step: the code
location with its repository and every job already resolved, so that a forked step starts with
them instead of resolving the asset graph again (`lending_pipelines/definitions.py`)."""

from .definitions import defs

REPOSITORY = defs.get_repository_def()  # cached on `defs`, which the forked steps load
JOBS = REPOSITORY.get_all_jobs()
