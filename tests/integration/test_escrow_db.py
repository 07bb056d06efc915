"""Workflow 4's tables and queries on the real PostgreSQL: the set-based deduction agrees with
the domain rule, releases and repayments are recorded once, the demo seed is idempotent."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lending_dev.sandbox.blnk import BlnkSandbox
from lending_dev.seed.escrow import seed_escrow
from lending_pipelines.db import migrate
from lending_pipelines.db.common import audit_log
from lending_pipelines.db.escrow import (
    EscrowStateError,
    apply_repayment,
    auto_deduct_candidates,
    auto_deduct_settings,
    blnk_accounts,
    compute_deductions,
    create_escrows,
    create_repayment_intents,
    escrows,
    mark_escrow_disputed,
    record_release,
    release_candidates,
    release_integrity_problems,
    repayments_on,
    retailer_debts,
    upsert_blnk_accounts,
)
from lending_pipelines.db.meta import SCHEMA
from lending_pipelines.domain.deduction import compute_deduction

DEFAULT_PCT = Decimal(30)
DEFAULT_MIN = 10_000
DAY = date(2026, 3, 1)


# --- the SQL and the domain function agree ----------------------------------------------------

retailer_rows = st.lists(
    st.tuples(
        st.integers(min_value=-(10**9), max_value=10**12),  # debt (negative = bad data)
        st.integers(min_value=-(10**6), max_value=10**12),  # wallet balance
        st.none() | st.integers(min_value=1, max_value=10_000).map(lambda bp: Decimal(bp) / 100),
        st.none() | st.integers(min_value=0, max_value=10**9),  # max daily
        st.none() | st.integers(min_value=0, max_value=10**7),  # minimum wallet balance
    ),
    min_size=1,
    max_size=40,
)


def load_and_compare(conn: sa.Connection, rows: list[tuple]) -> int:
    conn.execute(
        sa.insert(retailer_debts),
        [
            {"retailer_id": f"R{i}", "currency": "RWF", "outstanding_amount": debt}
            for i, (debt, *_rest) in enumerate(rows)
        ],
    )
    conn.execute(
        sa.insert(auto_deduct_settings),
        [
            {
                "retailer_id": f"R{i}",
                "enabled": True,
                "percentage": pct,
                "max_daily_amount": cap,
                "min_wallet_balance": minimum,
            }
            for i, (_, _, pct, cap, minimum) in enumerate(rows)
        ],
    )
    readings = [(f"R{i}", wallet) for i, (_, wallet, *_rest) in enumerate(rows)]
    computed = {
        row.retailer_id: row
        for row in compute_deductions(
            conn, "RWF", readings, default_percentage=DEFAULT_PCT, default_minimum=DEFAULT_MIN
        )
    }
    assert len(computed) == len(rows)
    for i, (debt, wallet, pct, cap, minimum) in enumerate(rows):
        expected = compute_deduction(
            debt=debt,
            wallet_balance=wallet,
            percentage=DEFAULT_PCT if pct is None else pct,
            max_daily=cap,
            minimum_balance=DEFAULT_MIN if minimum is None else minimum,
        )
        sql = computed[f"R{i}"]
        assert (sql.amount, sql.skip_reason, sql.limited_by) == (
            expected.amount,
            expected.skip_reason,
            expected.limited_by,
        ), (debt, wallet, pct, cap, minimum)
    return len(rows)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=retailer_rows)
def test_sql_and_domain_function_agree_on_random_retailers(db, rows):
    with db.connect() as conn, conn.begin() as transaction:
        load_and_compare(conn, rows)
        transaction.rollback()


def test_sql_and_domain_function_agree_on_a_large_random_batch_with_edge_values(db):
    rng = random.Random(20260301)
    # 9 * 10**14 is where the SQL switches from bigint to numeric arithmetic.
    edges = [0, 1, 2, 3, 9_999, 10_000, 10_001, 33_333, 10**12, 9 * 10**14, 9 * 10**14 + 1, 10**17]
    rows = []
    for _ in range(3_000):
        minimum = rng.choice([None, 0, 10_000, rng.randint(0, 50_000)])
        effective_min = DEFAULT_MIN if minimum is None else minimum
        rows.append(
            (
                rng.choice(edges + [rng.randint(-1_000, 10**9)]),
                rng.choice(
                    [
                        effective_min,
                        effective_min - 1,
                        effective_min + 1,
                        rng.randint(-5_000, 10**8),
                    ]
                ),
                rng.choice(
                    [
                        None,
                        Decimal("0.01"),
                        Decimal("12.5"),
                        Decimal(30),
                        Decimal(100),
                        Decimal(rng.randint(1, 10_000)) / 100,
                    ]
                ),
                rng.choice([None, 0, 1, rng.randint(0, 10**6)]),
                minimum,
            )
        )
    with db.begin() as conn:
        assert load_and_compare(conn, rows) == 3_000


# --- escrows -------------------------------------------------------------------------------------


def add_escrow(conn, order_id="O-1", **overrides) -> int:
    row = {
        "order_id": order_id,
        "retailer_id": "R-1",
        "wholesaler_id": "W-1",
        "amount": 5_000,
        "currency": "RWF",
    }
    create_escrows(conn, [row | overrides], release_days=7)
    return conn.execute(sa.select(escrows.c.id).where(escrows.c.order_id == order_id)).scalar()


def map_accounts(conn):
    upsert_blnk_accounts(
        conn,
        [
            {
                "owner_type": "escrow_pool",
                "owner_id": "platform",
                "currency": "RWF",
                "balance_id": "bln_pool",
            },
            {
                "owner_type": "wholesaler",
                "owner_id": "W-1",
                "currency": "RWF",
                "balance_id": "bln_w1",
            },
        ],
    )


def test_auto_release_defaults_to_creation_plus_the_configured_days_and_orders_are_unique(db):
    with db.begin() as conn:
        created = conn.execute(sa.select(sa.func.now())).scalar() - timedelta(days=3)
        add_escrow(conn, created_at=created)
        assert (
            create_escrows(
                conn,
                [
                    {
                        "order_id": "O-1",
                        "retailer_id": "R-1",
                        "wholesaler_id": "W-9",
                        "amount": 1,
                        "currency": "RWF",
                    }
                ],
                release_days=7,
            )
            == 0
        )
        row = conn.execute(sa.select(escrows)).mappings().one()
    assert row["auto_release_at"] - row["created_at"] == timedelta(days=7)
    assert (row["status"], row["wholesaler_id"]) == ("held", "W-1")


def test_release_candidates_are_due_held_escrows_with_their_balances(db):
    with db.begin() as conn:
        map_accounts(conn)
        now = conn.execute(sa.select(sa.func.now())).scalar()
        due = add_escrow(conn, "O-due", created_at=now - timedelta(days=8))
        add_escrow(conn, "O-later", created_at=now)
        add_escrow(conn, "O-disputed", created_at=now - timedelta(days=9), status="disputed")
        orphan = add_escrow(
            conn, "O-orphan", wholesaler_id="W-2", created_at=now - timedelta(days=8)
        )
        candidates = {c.escrow_id: c for c in release_candidates(conn, cutoff=now)}
    assert sorted(candidates) == sorted([due, orphan])
    assert candidates[due].problem is None
    assert (candidates[due].source_balance_id, candidates[due].destination_balance_id) == (
        "bln_pool",
        "bln_w1",
    )
    assert candidates[orphan].problem == "missing_wholesaler_balance: wholesaler 'W-2' (RWF)"


def test_an_escrow_is_recorded_released_once_and_only_while_held(db):
    with db.begin() as conn:
        map_accounts(conn)
        target = add_escrow(conn)
        (candidate,) = release_candidates(conn, escrow_id=target)
        kwargs = dict(
            business_date=DAY,
            transaction_id="txn_1",
            recovered=False,
            actor="ops@example.com",
            reason="due",
            run_id="run-1",
        )
        assert record_release(conn, candidate, **kwargs) is True
        assert record_release(conn, candidate, **kwargs) is False
        assert release_integrity_problems(conn) == []
        status = conn.execute(sa.select(escrows.c.status, escrows.c.ledger_reference)).one()
        audit = conn.execute(sa.select(audit_log.c.action, audit_log.c.actor)).all()
    assert status == ("released", f"escrow-release:{target}")
    assert audit == [("escrow.release", "ops@example.com")]
    with pytest.raises(sa.exc.IntegrityError), db.begin() as conn:
        conn.execute(sa.update(escrows).values(status="released", ledger_transaction_id=None))


def test_only_held_escrows_can_be_disputed(db):
    with db.begin() as conn:
        target = add_escrow(conn)
        mark_escrow_disputed(conn, target, actor="risk@example.com", reason="damaged", run_id=None)
    with pytest.raises(EscrowStateError, match="is 'disputed'"), db.begin() as conn:
        mark_escrow_disputed(conn, target, actor="risk@example.com", reason="again", run_id=None)
    with pytest.raises(EscrowStateError, match="does not exist"), db.begin() as conn:
        mark_escrow_disputed(conn, 999_999, actor="x", reason="y", run_id=None)


# --- auto-deduct ---------------------------------------------------------------------------------


def test_candidates_are_enabled_retailers_with_debt_and_no_record_for_the_day(db):
    with db.begin() as conn:
        conn.execute(
            sa.insert(retailer_debts),
            [
                {"retailer_id": "A", "currency": "RWF", "outstanding_amount": 100},
                {"retailer_id": "B", "currency": "RWF", "outstanding_amount": 100},
                {"retailer_id": "C", "currency": "RWF", "outstanding_amount": 0},
                {"retailer_id": "D", "currency": "RWF", "outstanding_amount": 100},
            ],
        )
        conn.execute(
            sa.insert(auto_deduct_settings),
            [
                {"retailer_id": "A", "enabled": True},
                {"retailer_id": "B", "enabled": False},
                {"retailer_id": "C", "enabled": True},
                {"retailer_id": "D", "enabled": True},
            ],
        )
        create_repayment_intents(conn, [intent("D")])
        assert [c.retailer_id for c in auto_deduct_candidates(conn, DAY)] == ["A"]
        assert [c.retailer_id for c in auto_deduct_candidates(conn, DAY + timedelta(1))] == [
            "A",
            "D",
        ]


def intent(retailer: str, amount: int = 300) -> dict:
    return {
        "retailer_id": retailer,
        "business_date": DAY,
        "currency": "RWF",
        "amount": amount,
        "debt_before": 1_000,
        "wallet_balance_before": 50_000,
        "limited_by": "percentage",
        "source_balance_id": f"bln_{retailer}",
        "destination_balance_id": "bln_pool",
        "ledger_reference": f"auto-deduct:{retailer}:{DAY}",
    }


def test_applying_a_repayment_reduces_the_debt_by_the_ledger_amount_once(db):
    with db.begin() as conn:
        conn.execute(
            sa.insert(retailer_debts).values(
                retailer_id="A", currency="RWF", outstanding_amount=1_000
            )
        )
        assert create_repayment_intents(conn, [intent("A")]) == 1
        assert create_repayment_intents(conn, [intent("A", amount=999)]) == 0  # intent is kept
        (pending,) = repayments_on(conn, DAY, status="pending")
        kwargs = dict(
            transaction_id="txn_9",
            ledger_amount=300,
            recovered=True,
            actor="dagster:auto_deduct_job",
            run_id="run-2",
        )
        assert apply_repayment(conn, pending, **kwargs) is True
        assert apply_repayment(conn, pending, **kwargs) is False
        debt = conn.execute(sa.select(retailer_debts.c.outstanding_amount)).scalar()
        (applied,) = repayments_on(conn, DAY)
        (audit,) = conn.execute(sa.select(audit_log)).mappings().all()
    assert debt == 700
    assert (applied.status, applied.ledger_transaction_id, applied.recovered) == (
        "applied",
        "txn_9",
        True,
    )
    assert audit["old_value"]["outstanding_amount"] == 1_000
    assert audit["new_value"]["outstanding_amount"] == 700


def test_debt_never_goes_below_zero_when_the_ledger_moved_more_than_the_debt(db):
    with db.begin() as conn:
        conn.execute(
            sa.insert(retailer_debts).values(
                retailer_id="A", currency="RWF", outstanding_amount=200
            )
        )
        create_repayment_intents(conn, [intent("A", amount=300)])
        (pending,) = repayments_on(conn, DAY, status="pending")
        assert apply_repayment(
            conn,
            pending,
            transaction_id="txn_1",
            ledger_amount=300,
            recovered=True,
            actor="dagster:auto_deduct_job",
            run_id="run-1",
        )
        debt = conn.execute(sa.select(retailer_debts.c.outstanding_amount)).scalar()
        (audit,) = conn.execute(sa.select(audit_log)).mappings().all()
    assert debt == 0  # clamped; the excess is on record for finance
    assert audit["new_value"]["excess_over_debt"] == 100
    # The database refuses a reduction below zero, whoever writes it.
    with pytest.raises(sa.exc.IntegrityError, match="would go below zero"), db.begin() as conn:
        conn.execute(sa.update(retailer_debts).values(outstanding_amount=-1))


def test_a_retailer_has_at_most_one_pending_repayment_whatever_the_date(db):
    with db.begin() as conn:
        assert create_repayment_intents(conn, [intent("A")]) == 1
        later = {**intent("A"), "business_date": DAY + timedelta(1), "ledger_reference": "next"}
        assert create_repayment_intents(conn, [later]) == 0


@pytest.mark.parametrize(
    ("table", "values"),
    [
        (auto_deduct_settings, {"retailer_id": "X", "percentage": Decimal("100.5")}),
        (auto_deduct_settings, {"retailer_id": "X", "percentage": Decimal(0)}),
        (auto_deduct_settings, {"retailer_id": "X", "min_wallet_balance": -1}),
        (
            escrows,
            {
                "order_id": "O",
                "retailer_id": "R",
                "wholesaler_id": "W",
                "amount": 0,
                "currency": "RWF",
                "auto_release_at": sa.func.now(),
            },
        ),
        (
            blnk_accounts,
            {"owner_type": "friend", "owner_id": "x", "currency": "RWF", "balance_id": "b"},
        ),
    ],
)
def test_the_database_refuses_values_the_rules_cannot_use(db, table, values):
    with pytest.raises(sa.exc.IntegrityError), db.begin() as conn:
        conn.execute(sa.insert(table).values(**values))


# --- seed and migration ---------------------------------------------------------------------------


def test_the_demo_seed_is_idempotent_and_matches_the_sandbox_ledger(db, settings):
    for _ in range(2):
        with db.begin() as conn:
            seed_escrow(conn, settings)
    with db.connect() as conn:
        counts = {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
            for t in (escrows, retailer_debts, auto_deduct_settings, blnk_accounts)
        }
        mapped = set(conn.execute(sa.select(blnk_accounts.c.balance_id)).scalars())
    assert counts == {
        "escrows": 7,
        "retailer_debts": 12,
        "auto_deduct_settings": 12,
        "blnk_accounts": 15,  # 2 pools, 2 wholesalers, 11 wallets (R-010 has none)
    }
    in_sandbox = {b["balance_id"] for b in BlnkSandbox().snapshot()["balances"]}
    assert mapped <= in_sandbox


def test_the_escrow_migration_downgrades_cleanly_on_its_own(scratch_db_url):
    migrate.upgrade(scratch_db_url)
    owned = {
        "blnk_accounts",
        "escrows",
        "escrow_releases",
        "retailer_debts",
        "auto_deduct_settings",
        "repayments",
    }
    assert owned <= tables(scratch_db_url)
    # The escrow branch is two steps (0004_escrow, 0008_escrow_pending): both come off.
    migrate.downgrade(scratch_db_url, "0004_escrow@-2")
    remaining = tables(scratch_db_url)
    assert not owned & remaining and "audit_log" in remaining
    migrate.upgrade(scratch_db_url)
    assert owned <= tables(scratch_db_url)


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names(schema=SCHEMA))
    finally:
        engine.dispose()


@pytest.fixture
def scratch_db_url(settings):
    import uuid

    from lending_pipelines.db.server import drop_database, ensure_database, server_url

    url = server_url(settings).set(database=f"lending_escrow_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    yield url.render_as_string(hide_password=False)
    drop_database(url)
