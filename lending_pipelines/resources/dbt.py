"""dbt's CLI as a resource: the project in `dbt/` with its own profiles.yml.

dagster-dbt (and with it dbt-core, ~2 s to import) is imported only when a command runs, so the
processes of every other job never load it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field


class DbtResource(dg.ConfigurableResource):
    """Runs dbt commands through dagster-dbt's `DbtCliResource` (streamed events and logs)."""

    project_dir: str = Field(description="The dbt project directory.")
    profiles_dir: str = Field(description="Where profiles.yml is (it reads the environment).")
    dbt_executable: str = Field(default="dbt", description="The dbt executable to run.")

    def cli(
        self,
        args: Sequence[str],
        *,
        manifest: Mapping[str, Any],
        translator: Any,
        target_path: Path,
    ) -> Any:
        """Start `dbt <args>`; the invocation streams dagster-dbt's events for `manifest`."""
        from dagster_dbt import DbtCliResource

        return DbtCliResource(
            project_dir=self.project_dir,
            profiles_dir=self.profiles_dir,
            dbt_executable=self.dbt_executable,
        ).cli(
            list(args),
            manifest=manifest,
            dagster_dbt_translator=translator,
            target_path=target_path,
        )
