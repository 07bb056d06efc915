"""A snapshot of everything automated: assets (group, kinds, owners, deps, partitions, pools,
retry policies, checks, freshness), jobs (selection, tags, executor), schedules (cron,
timezone) and sensors. A change to automation shows up in review as a diff of
tests/snapshots/definitions.json; `make snapshot` rewrites it after an intended change."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from lending_pipelines.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
UPDATE_ENV = "LENDING_UPDATE_SNAPSHOT"


def _repository():
    return defs.get_repository_def()


def _partitions(partitions_def: Any) -> str | None:
    if partitions_def is None:
        return None
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return (
            f"time window cron={partitions_def.cron_schedule!r} "
            f"timezone={partitions_def.timezone!r} start={partitions_def.start.date()}"
        )
    return type(partitions_def).__name__


def _retry(policy: dg.RetryPolicy | None) -> str | None:
    if policy is None:
        return None
    backoff = policy.backoff.value if policy.backoff else None
    jitter = policy.jitter.value if policy.jitter else None
    return f"max_retries={policy.max_retries} delay={policy.delay} {backoff} {jitter}"


def _assets() -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        retry = None
        if node.is_executable:  # a graph asset's policy sits on its ops
            ops = node.assets_def.node_def.iterate_op_defs()
            retry = sorted({_retry(op.retry_policy) for op in ops if op.retry_policy}) or None
        out[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "pools": sorted(node.pools or []),
            "retry": retry,
            "checks": sorted(check.name for check in node.check_keys),
            "freshness": repr(node.freshness_policy) if node.freshness_policy else None,
            "executable": node.is_executable,
        }
    return out


def _jobs() -> dict[str, Any]:
    out = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        out[job.name] = {
            "steps": sorted(node.name for node in job.graph.iterate_op_defs()),
            "tags": {k: str(v) for k, v in sorted(job.tags.items())},
            "executor": job.executor_def.name,
            "partitioned": job.partitions_def is not None,
        }
    return out


def _schedules() -> dict[str, Any]:
    return {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "job": s.job_name,
            "default_status": s.default_status.value,
        }
        for s in sorted(_repository().schedule_defs, key=lambda s: s.name)
    }


def _sensors() -> dict[str, Any]:
    return {
        s.name: {
            "jobs": sorted(job.name for job in s.jobs) if s.has_jobs else [],
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "default_status": s.default_status.value,
        }
        for s in sorted(_repository().sensor_defs, key=lambda s: s.name)
    }


def snapshot() -> dict[str, Any]:
    return {
        "assets": _assets(),
        "jobs": _jobs(),
        "schedules": _schedules(),
        "sensors": _sensors(),
        "resources": sorted(defs.resources or {}),
    }


def test_automation_matches_the_reviewed_snapshot():
    current = json.loads(json.dumps(snapshot(), sort_keys=True, default=str))
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    stored = json.loads(SNAPSHOT.read_text())
    assert current == stored, f"automation changed: review it, then `make snapshot` ({SNAPSHOT})"
