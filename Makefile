# Two commands on a fresh machine: `make dev` runs the system, `make test` passes the tests.
# Only Python 3.11 and the package registries are needed; uv is bootstrapped from PyPI.

PYTHON ?= python3.11
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
UV := $(PYTHON) -m uv
# Python keeps compiled modules: the dependencies are compiled once at install and our own
# modules on first import. Without them every process (a test's subprocess, a run worker, a
# code server) compiles Dagster from source again: 3-4 s of CPU each on this machine.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: dev test install lint bench snapshot settings-table clean-local

.venv/.installed: pyproject.toml uv.lock
	$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --extra k8s --compile-bytecode
	@touch $@

install: .venv/.installed

dev: install
	$(UV) run --frozen lending dev

# Tests and benchmarks are dev mode: the embedded PostgreSQL and dev secrets may be used.
test: export LENDING_DEV_MODE = true
test: install
	$(UV) run --frozen ruff check lending_pipelines lending_dev tests bench
	$(UV) run --frozen pytest  # includes `dg check defs` (tests/test_definitions.py)

# After an intended change to assets, jobs, schedules or sensors: rewrite the reviewed snapshot.
snapshot: export LENDING_DEV_MODE = true
snapshot: install
	LENDING_UPDATE_SNAPSHOT=1 $(UV) run --frozen pytest -n0 -q tests/test_definitions_snapshot.py

settings-table: install
	$(UV) run --frozen python -m lending_pipelines.settings.table --write

lint: install
	$(UV) run --frozen ruff check lending_pipelines lending_dev tests bench
	$(UV) run --frozen ruff format --check lending_pipelines lending_dev tests bench

bench: export LENDING_DEV_MODE = true
bench: install
	@for script in bench/*.py; do name=$$(basename $$script .py); echo "== bench.$$name"; $(UV) run --frozen python -m bench.$$name || exit 1; done

clean-local:
	rm -rf .lending
