"""dbt's CLI as a resource: the project in `dbt/` with its own profiles.yml.

dagster-dbt (and with it dbt-core, ~2 s to import) is imported only when a command runs, so the
processes of every other job never load it.

dbt reuses an earlier parse (`partial_parse.msgpack`) only when the profile's connection values
and the vars are those it was made with; the manifest prepared without a database never
matches. So each invocation starts from the parse the last invocation with the same profile
left (`target/partial_parse/<key>.msgpack`) instead of parsing the whole project again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

PARTIAL_PARSE_FILE = "partial_parse.msgpack"
KEEP_INVOCATIONS = 30


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
        parse_key: str | None = None,
    ) -> Any:
        """Start `dbt <args>`; the invocation streams dagster-dbt's events for `manifest`.
        With `parse_key` (a digest of the profile's values and vars), dbt starts from the parse
        last kept under that key (`keep_parse`)."""
        from dagster_dbt import DbtCliResource

        if parse_key is not None and self._kept_parse(parse_key).exists():
            target_path.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._kept_parse(parse_key), target_path / PARTIAL_PARSE_FILE)

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

    def keep_parse(self, target_path: Path, parse_key: str) -> bool:
        """Keep the parse an invocation in `target_path` wrote, for the next with `parse_key`."""
        written = target_path / PARTIAL_PARSE_FILE
        if not written.exists():
            return False
        kept = self._kept_parse(parse_key)
        kept.parent.mkdir(parents=True, exist_ok=True)
        staging = kept.with_name(f"{kept.name}.{os.getpid()}.tmp")
        shutil.copyfile(written, staging)
        os.replace(staging, kept)  # a concurrent reader sees the old file or the new one
        return True

    def prune(self, prefix: str, keep: int = KEEP_INVOCATIONS) -> int:
        """Remove all but the newest `keep` invocation directories named `prefix`-* and kept
        parses (each run leaves ~3 MB in target/). Returns how many were removed."""
        target = Path(self.project_dir) / "target"
        removed = 0
        for pattern, remove in (
            (f"{prefix}-*", shutil.rmtree),
            ("partial_parse/*.msgpack", os.remove),
        ):
            paths = sorted(target.glob(pattern), key=_mtime, reverse=True)
            for path in paths[keep:]:
                with contextlib.suppress(FileNotFoundError):  # a concurrent prune got it first
                    remove(path)
                    removed += 1
        return removed

    def _kept_parse(self, parse_key: str) -> Path:
        return Path(self.project_dir) / "target" / "partial_parse" / f"{parse_key}.msgpack"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
