"""Whether a job already has a run queued or running (sensors launch one at a time)."""

import dagster as dg

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def run_in_flight(context: dg.SensorEvaluationContext, job_name: str) -> dg.DagsterRun | None:
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1
    )
    return runs[0] if runs else None
