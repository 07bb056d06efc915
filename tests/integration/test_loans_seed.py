"""The demo partners `make dev` seeds match the sandbox: all five poll fine (one of them an old
Fineract filtered with sqlSearch) and every disbursement succeeds — a new user first sees a
healthy system; `lending seed --faults` then breaks it on purpose. Seeding is idempotent."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from lending_dev.seed.loans import inject_demo_faults, seed_loans
from lending_pipelines.db import loans as loans_db
from lending_pipelines.settings import get_settings
from tests.loans_world import *  # noqa: F403


def seeded(world) -> None:
    settings = get_settings().model_copy(update={"sandbox_url": world.sandbox.base_url})
    with world.engine.begin() as conn:
        seed_loans(conn, settings)


def test_seeding_twice_gives_the_same_partners_and_keeps_operator_changes(world):
    seeded(world)
    with world.engine.begin() as conn:
        conn.execute(sa.update(loans_db.partners).values(name="Renamed by ops").where(
            loans_db.partners.c.id == "acme"))  # fmt: skip
    seeded(world)
    with world.engine.connect() as conn:
        partners = {r.id: r for r in conn.execute(sa.select(loans_db.partners))}
        configs = conn.execute(
            sa.select(sa.func.count()).select_from(loans_db.auto_disbursal_configs)
        ).scalar()
    assert sorted(partners) == ["acme", "duka", "jamii", "kilimo", "umoja"]
    assert partners["acme"].name == "Renamed by ops"
    assert partners["umoja"].fineract_filter_mode == "sqlSearch"
    assert configs == 5


@pytest.mark.slow
def test_the_seeded_demo_opens_healthy_every_partner_polled_and_every_loan_paid(world):
    seeded(world)
    result = world.run("loan_polling_job")
    assert result.success
    with world.engine.connect() as conn:
        attempts = {r.partner_id: r for r in conn.execute(sa.select(loans_db.poll_attempts))}
    assert {p for p, a in attempts.items() if a.ok} == {"acme", "kilimo", "jamii", "umoja", "duka"}
    fineract = world.sandbox.state("fineract")["tenants"]
    for partner in ("umoja", "jamii"):
        approved = sum(1 for loan in fineract[partner]["loans"].values() if loan["status"] == 200)
        assert attempts[partner].loans_seen == approved
    assert {r.partner_id for r in world.requests()} == {"acme", "kilimo", "jamii", "umoja"}
    assert not [r for r in world.requests() if r.status == "failed"]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["all_partners_polled"] and checks["partner_totals_consistent"]


@pytest.mark.slow
def test_injected_demo_faults_fail_one_partners_polls_and_some_phones(world):
    seeded(world)
    settings = get_settings().model_copy(update={"sandbox_url": world.sandbox.base_url})
    with world.engine.begin() as conn:
        done = inject_demo_faults(conn, settings)
    assert len(done) == 2 and "unusable phone" in done[1]
    world.sandbox.configure("fineract", {"add_loans": {"tenant": "acme", "count": 6}})
    result = world.run("loan_polling_job")
    with world.engine.connect() as conn:
        attempts = {r.partner_id: r for r in conn.execute(sa.select(loans_db.poll_attempts))}
    assert "HTTP 401" in attempts["duka"].error
    assert not {c.check_name: c.passed for c in result.get_asset_check_evaluations()}[
        "all_partners_polled"
    ]
    failed = [r for r in world.requests() if r.status == "failed"]
    assert len(failed) == 2 and all("phone" in r.failure_reason for r in failed)
