"""The dbt resource's bookkeeping in target/: parses kept per profile, old invocations pruned."""

import os

from lending_pipelines.resources.dbt import PARTIAL_PARSE_FILE, DbtResource


def _resource(tmp_path) -> DbtResource:
    return DbtResource(project_dir=str(tmp_path), profiles_dir=str(tmp_path))


def test_a_kept_parse_is_given_to_the_next_invocation_with_the_same_key_only(tmp_path):
    dbt = _resource(tmp_path)
    first = tmp_path / "target" / "analytics_dbt_models-aaa"
    first.mkdir(parents=True)
    (first / PARTIAL_PARSE_FILE).write_bytes(b"parse of profile A")

    assert dbt.keep_parse(first, "profile-a")
    assert not dbt.keep_parse(tmp_path / "target" / "never-ran", "profile-b")

    kept = tmp_path / "target" / "partial_parse"
    assert (kept / "profile-a.msgpack").read_bytes() == b"parse of profile A"
    assert not (kept / "profile-b.msgpack").exists()


def test_pruning_keeps_the_newest_invocations_and_parses(tmp_path):
    dbt = _resource(tmp_path)
    target = tmp_path / "target"
    (target / "partial_parse").mkdir(parents=True)
    for n in range(35):
        run = target / f"analytics_dbt_models-{n:03d}"
        run.mkdir()
        (run / "dbt.log").write_text("log")
        parse = target / "partial_parse" / f"{n:03d}.msgpack"
        parse.write_bytes(b"x")
        for path in (run, parse):
            os.utime(path, (1_000_000 + n, 1_000_000 + n))
    (target / "manifest.json").write_text("{}")

    removed = dbt.prune("analytics_dbt_models", keep=30)

    assert removed == 10
    runs = sorted(p.name for p in target.glob("analytics_dbt_models-*"))
    assert runs == [f"analytics_dbt_models-{n:03d}" for n in range(5, 35)]
    parses = sorted(p.name for p in (target / "partial_parse").iterdir())
    assert parses == [f"{n:03d}.msgpack" for n in range(5, 35)]
    assert (target / "manifest.json").exists()
