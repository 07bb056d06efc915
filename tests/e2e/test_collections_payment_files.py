"""Payment files end to end: the sensor picks each inbox file up once per content, the job posts
good rows and quarantines each bad one with its reason, an unreadable file is quarantined whole,
a re-dropped file posts nothing, a run killed mid-file then re-picked posts exactly once (also
when the next day's file posts first), and files posted at once post each payment once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import sqlalchemy as sa

from lending_pipelines.assets.collections.jobs import COLLECTIONS_JOBS
from lending_pipelines.assets.collections.partitions import TIMEZONE
from lending_pipelines.db.collections.tables import (
    installments,
    payment_allocations,
    payment_files,
    payment_rejections,
    payments,
)
from lending_pipelines.domain.collections_payments import Bounds
from lending_pipelines.resources.collections_config import CollectionsConfig
from lending_pipelines.sensors.payment_files import payment_files_sensor
from lending_pipelines.settings import PROJECT_ROOT
from lending_pipelines.workflows.collections.payment_files import process_payment_file
from tests.collections_book import add_loan, collections_resources, pay

TODAY = datetime.now(ZoneInfo(TIMEZONE)).date()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


@pytest.fixture
def inbox(tmp_path) -> Path:
    path = tmp_path / "inbox" / "payments"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def world(db, database, inbox):
    config = CollectionsConfig(inbox_path=str(inbox))
    defs = dg.Definitions(
        jobs=COLLECTIONS_JOBS,
        sensors=[payment_files_sensor],
        resources=collections_resources(database, collections_config=config),
    )
    return defs, dg.DagsterInstance.ephemeral(), config, database


def tick(world) -> list[dg.RunRequest]:
    defs, instance, config, database = world
    context = dg.build_sensor_context(
        instance=instance,
        resources={"database": database, "collections_config": config},
        definitions=defs,
    )
    result = payment_files_sensor(context)
    return list(result) if isinstance(result, list) else []


def run(world, request: dg.RunRequest, raise_on_error=True):
    defs, instance, _, _ = world
    return defs.resolve_job_def("payment_file_job").execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
        raise_on_error=raise_on_error,
    )


def pick_up_and_run(world, raise_on_error=True):
    requests = tick(world)
    return [run(world, r, raise_on_error) for r in requests]


@pytest.fixture
def loans(db):
    with db.begin() as conn:
        active = add_loan(conn, [(TODAY - timedelta(days=40), 1000_00), (TODAY, 2000_00)])
        legal = add_loan(conn, [(TODAY - timedelta(days=100), 500_00)], status="LEGAL")
        closed = add_loan(conn, [(TODAY - timedelta(days=100), 500_00)], status="CLOSED")
        pay(conn, active, 100, TODAY - timedelta(days=3))  # records a UTR: SBINN...
        recorded = conn.execute(sa.select(payments.c.utr)).scalar_one()
    return {"active": active, "legal": legal, "closed": closed, "recorded_utr": recorded}


def one_of_each(loans) -> tuple[str, dict[int, str]]:
    a, lg, c = loans["active"], loans["legal"], loans["closed"]
    rows = [
        ("HDFCN26334000001", a, "1,500.00", day(-1), None),
        ("633400000002", lg, "1,00,000.50", day(0), None),
        ("HDFCR52026113000000003", a, "600", day(-7), None),
        ("", a, "10", day(0), "missing_value"),
        ("UTR-42", a, "10", day(0), "invalid_utr"),
        ("633400000004", a, "ten", day(0), "invalid_amount"),
        ("633400000005", a, "0.50", day(0), "amount_out_of_range"),
        ("633400000006", a, "10", "31/02/2026", "invalid_date"),
        ("633400000007", a, "10", day(1), "future_date"),
        ("633400000008", a, "10", day(-8), "backdated"),
        ("633400000009", "L-1", "10", day(0), "invalid_loan_id"),
        ("633400000010", 999999, "10", day(0), "unknown_loan"),
        ("633400000011", c, "10", day(0), "loan_not_payable"),
        ("hdfcn26334000001", a, "10", day(0), "duplicate_utr_in_file"),
        (loans["recorded_utr"], a, "10", day(0), "duplicate_utr_recorded"),
    ]
    lines = ["UTR, Loan_ID ,amount,paid_on,narration"]
    expected = {}
    for n, (utr, loan, amount, paid_on, reason) in enumerate(rows, 1):
        lines.append(f'{utr},{loan},"{amount}",{paid_on},row {n}')
        if reason:
            expected[n] = reason
    lines.append(f"633400000012,{a},10,{day(0)}")  # one column short
    expected[len(rows) + 1] = "wrong_column_count"
    return "\n".join(lines) + "\n", expected


def counts(db) -> dict[str, int]:
    with db.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (payments, payment_allocations, payment_files, payment_rejections)
        }


def test_a_file_with_each_rejection_reason_posts_the_good_rows_and_quarantines_the_rest(
    db, world, inbox, loans
):
    content, expected = one_of_each(loans)
    (inbox / "bank-2026-11-30.csv").write_text(content)
    (result,) = pick_up_and_run(world)
    assert result.success
    with db.connect() as conn:
        file = conn.execute(sa.select(payment_files)).one()
        rejections = dict(
            conn.execute(
                sa.select(payment_rejections.c.row_number, payment_rejections.c.reason_code)
            ).all()
        )
        posted = conn.execute(
            sa.select(payments.c.utr, payments.c.amount_minor, payments.c.overpaid_minor)
            .where(payments.c.file_id == file.id)
            .order_by(payments.c.row_number)
        ).all()
        paid = dict(
            conn.execute(
                sa.select(installments.c.number, installments.c.amount_paid_minor).where(
                    installments.c.loan_id == loans["active"]
                )
            ).all()
        )
    assert rejections == expected
    assert (file.rows, file.accepted, file.rejected) == (16, 3, 13)
    assert file.accepted + file.rejected == file.rows
    assert [tuple(p) for p in posted] == [
        ("HDFCN26334000001", 1500_00, 0),
        ("633400000002", 1_00_000_50, 1_00_000_50 - 500_00),  # overpayment kept
        ("HDFCR52026113000000003", 600_00, 0),
    ]
    # in payment-date order, oldest installment first: 1.00 earlier, then 600 (7 days ago)
    # and 1,500 (yesterday) on the active loan
    assert paid == {1: 1000_00, 2: 100 + 600_00 + 1500_00 - 1000_00}
    assert not list(inbox.glob("*.csv"))
    assert len(list((inbox / "processed").iterdir())) == 1
    (output,) = [e for e in result.all_node_events if e.is_successful_output]
    meta = output.step_output_data.metadata
    assert meta["accepted"].value == 3 and meta["rejected"].value == 13
    assert meta["accepted_amount"].value == "₹1,02,100.50"
    assert meta["rejected_by_reason"].value == {r: 1 for r in expected.values()}

    # the same content dropped again: one more run, nothing posted
    before = counts(db)
    (inbox / "bank-2026-11-30-again.csv").write_text(content)
    (again,) = pick_up_and_run(world)
    assert again.success
    assert counts(db) == before
    assert len(list((inbox / "processed").iterdir())) == 2
    assert tick(world) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("utr,loan_id,amount,paid_on\nSBINN26334000001,1,1,2026-11-30\n".encode("utf-16"),
         "file_not_csv"),
        ("utr,loan_id,amount,paid_on\nSBINN26334000001,1,₹1,2026-11-30\n".encode("latin-1",
         errors="replace").replace(b"?", b"\xa3"), "file_encoding"),
        (b"reference,amount\nSBINN26334000001,100\n", "file_missing_columns"),
        (b'utr,loan_id,amount,paid_on\n"SBINN26334000001,1,1,2026-11-30\n', "file_not_csv"),
    ],
)  # fmt: skip
def test_an_unreadable_file_is_quarantined_whole_and_nothing_posted(
    db, world, inbox, loans, content, reason
):
    before = counts(db)
    (inbox / "broken.csv").write_bytes(content)
    (result,) = pick_up_and_run(world)
    assert result.success
    with db.connect() as conn:
        file = conn.execute(sa.select(payment_files)).one()
        rejection = conn.execute(sa.select(payment_rejections)).one()
    assert (file.status, file.rows) == ("rejected", 0)
    assert file.reason.startswith(reason)
    assert (rejection.reason_code, rejection.row_number) == (reason, 0)
    assert counts(db)["payments"] == before["payments"]
    assert len(list((inbox / "rejected").iterdir())) == 1


CRASHING_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import lending_pipelines.workflows.collections.payment_files as engine
    from lending_pipelines.domain.collections_payments import Bounds

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[1] == "before_commit":
        engine.payments_db.quarantine = die  # inside the file's transaction
    else:
        engine._move = die  # committed, not yet moved
    import sqlalchemy as sa
    engine.process_payment_file(
        sa.create_engine(os.environ["DB_URL"]), Path(sys.argv[2]), bounds=Bounds(),
        timezone="Asia/Kolkata", actor="crash-test", run_id=None,
    )
    """
)


def crash_while_posting(db_url: str, path: Path, when: str) -> None:
    process = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, when, str(path)],
        env={**os.environ, "DB_URL": db_url},
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=120,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()


@pytest.mark.parametrize(
    ("when", "posted_by_the_killed_run"), [("before_commit", 0), ("after_commit", 3)]
)
def test_a_run_killed_mid_file_then_repicked_posts_exactly_once(
    db, db_url, world, inbox, loans, when, posted_by_the_killed_run
):
    content, _ = one_of_each(loans)
    path = inbox / "bank.csv"
    path.write_text(content)
    crash_while_posting(db_url, path, when)
    assert counts(db)["payments"] == 1 + posted_by_the_killed_run
    assert path.exists()
    (result,) = pick_up_and_run(world)
    assert result.success
    after = counts(db)
    assert (after["payments"], after["payment_files"]) == (1 + 3, 1)
    assert after["payment_rejections"] == 13
    assert not path.exists()
    assert tick(world) == []


def ledger(db) -> tuple[dict[int, int], list[tuple[int, int, int]], int, int]:
    """Allocations per installment, each installment's (id, due, paid cache), and the payments'
    total amount and total overpayment."""
    with db.connect() as conn:
        allocated = dict(
            conn.execute(
                sa.select(
                    payment_allocations.c.installment_id,
                    sa.func.sum(payment_allocations.c.amount_minor),
                ).group_by(payment_allocations.c.installment_id)
            ).all()
        )
        cache = conn.execute(
            sa.select(
                installments.c.id, installments.c.amount_due_minor, installments.c.amount_paid_minor
            )
        ).all()
        paid_in, overpaid = conn.execute(
            sa.select(sa.func.sum(payments.c.amount_minor), sa.func.sum(payments.c.overpaid_minor))
        ).one()
    return allocated, [tuple(row) for row in cache], paid_in, overpaid


def money_adds_up(db) -> None:
    """Every installment's paid cache equals its allocations and never exceeds what it owes, and
    every payment's amount is its allocations plus its overpayment."""
    allocated, cache, paid_in, overpaid = ledger(db)
    assert all(paid == allocated.get(i, 0) <= due for i, due, paid in cache)
    assert paid_in == sum(allocated.values()) + overpaid


def test_a_file_killed_mid_run_then_the_next_days_file_then_the_first_repicked_posts_each_once(
    db, db_url, world, inbox, loans, tmp_path
):
    """The next day's file arrives and posts before anyone re-runs the killed one: the killed
    file, picked up after it, posts once on top of what the next day's file allocated."""
    content, _ = one_of_each(loans)
    path = inbox / "bank.csv"
    path.write_text(content)
    crash_while_posting(db_url, path, "before_commit")
    assert counts(db)["payments"] == 1  # the fixture's payment only
    next_day = tmp_path / "next-day" / "bank-next.csv"
    next_day.parent.mkdir()
    next_day.write_text(f'utr,loan_id,amount,paid_on\n633400000099,{loans["active"]},"1,000.00",'
                        f"{day(0)}\n")  # fmt: skip
    report = process_payment_file(
        db, next_day, bounds=Bounds(), timezone=TIMEZONE, actor="test", run_id=None
    )
    assert (report.status, report.accepted) == ("posted", 1)

    (result,) = pick_up_and_run(world)
    assert result.success
    after = counts(db)
    assert (after["payments"], after["payment_files"]) == (1 + 1 + 3, 2)
    assert after["payment_rejections"] == 13
    money_adds_up(db)
    assert tick(world) == [] and not path.exists()


def test_files_posted_at_the_same_moment_post_each_payment_once_and_never_overpay(db, tmp_path):
    """Three files paying the same loans, each dropped twice, posted by six runs at once (what
    overlapping sensor runs or a UI re-run do): the posting lock orders them, each file posts
    once, every installment's paid cache equals its allocations and never exceeds what it owes,
    and what no installment could take is kept as overpayment."""
    with db.begin() as conn:
        book = [
            add_loan(conn, [(TODAY - timedelta(days=30), 1000_00), (TODAY, 1000_00)])
            for _ in range(5)
        ]
    paths = []
    for f in range(3):
        rows = [f"{633500000000 + 100 * f + n},{loan},700,{day(-f)}" for n, loan in enumerate(book)]
        for copy in range(2):
            folder = tmp_path / f"inbox-{f}-{copy}"
            folder.mkdir()
            paths.append(folder / f"bank-{f}.csv")
            paths[-1].write_text("\n".join(["utr,loan_id,amount,paid_on", *rows]) + "\n")
    start = threading.Barrier(len(paths))

    def post(path: Path):
        start.wait()
        return process_payment_file(
            db, path, bounds=Bounds(), timezone=TIMEZONE, actor="test", run_id=None
        )

    with ThreadPoolExecutor(len(paths)) as pool:
        reports = list(pool.map(post, paths))

    assert sorted(r.status for r in reports) == ["duplicate"] * 3 + ["posted"] * 3
    assert counts(db)["payments"] == 15
    allocated, cache, _, overpaid = ledger(db)
    assert all(paid == allocated.get(i, 0) and paid == due for i, due, paid in cache)
    assert sum(allocated.values()) + overpaid == 15 * 700_00
    assert overpaid == 5 * 100_00
