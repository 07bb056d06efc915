"""The Dagster instance configuration (dagster.yaml) for local dev; deploy/dagster.yaml mirrors it.

Money-moving jobs carry the run tag `lending/serial: <job>`; the limit of one run per unique
value of that tag keeps two runs of the same job from overlapping (the database's unique keys
and row locks keep them correct even if they did).
"""

from __future__ import annotations

from pathlib import Path

import yaml

SERIAL_TAG = "lending/serial"


def serial_tags(job_name: str) -> dict[str, str]:
    """Run tags that allow one run at a time of `job_name`."""
    return {SERIAL_TAG: job_name}


def instance_config(storage_url_env: str = "LENDING_DAGSTER_STORAGE_URL") -> dict:
    return {
        "storage": {"postgres": {"postgres_url": {"env": storage_url_env}}},
        "concurrency": {
            "runs": {
                "max_concurrent_runs": 10,
                "tag_concurrency_limits": [
                    {"key": SERIAL_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
                ],
            },
        },
        "run_monitoring": {"enabled": True, "max_resume_run_attempts": 0},
        "telemetry": {"enabled": False},
    }


def write_instance_config(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    path.write_text(yaml.safe_dump(instance_config(), sort_keys=False))
    return path
