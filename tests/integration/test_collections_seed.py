"""The collections demo data: loans in every bucket once DPD runs, collectors with assignments,
a sample payment file whose good rows post and bad rows land in quarantine; seeding twice adds
nothing."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from lending_dev.seed.collections import DEMO_LOANS, SAMPLE_FILE, seed_collections
from lending_pipelines.domain.collections_payments import Bounds
from lending_pipelines.workflows.collections.dpd import run_dpd
from lending_pipelines.workflows.collections.payment_files import process_payment_file


def test_demo_book_spans_every_bucket_and_its_sample_file_posts_good_and_quarantines_bad(
    db, settings, tmp_path, monkeypatch
):
    inbox = tmp_path / "inbox"
    monkeypatch.setenv("LENDING_PAYMENT_INBOX", str(inbox))
    with db.begin() as conn:
        seed_collections(conn, settings)
    with db.begin() as conn:
        seed_collections(conn, settings)  # idempotent
    today = datetime.now(ZoneInfo(settings.collections_timezone)).date()
    report = run_dpd(db, [today], run_id="seed-test")
    buckets = report.days[0].buckets
    assert all(buckets[b] > 100 for b in ("current", "1-30", "31-60", "61-90", "90+")), buckets
    with db.connect() as conn:
        loans, unassigned = conn.execute(sa.text(
            "SELECT count(*), count(*) FILTER (WHERE collector_id IS NULL) "
            "FROM lending.collection_loans")).one()  # fmt: skip
        statuses = dict(conn.execute(sa.text(
            "SELECT status, count(*) FROM lending.collection_loans GROUP BY 1")).all())  # fmt: skip
    assert (loans, unassigned) == (DEMO_LOANS, 0)
    assert statuses["CLOSED"] > 0 and statuses["WRITTEN_OFF"] > 0

    assert [p.name for p in inbox.iterdir()] == [SAMPLE_FILE]
    posted = process_payment_file(
        db, inbox / SAMPLE_FILE, bounds=Bounds(), timezone=settings.collections_timezone,
        actor="test", run_id=None,
    )  # fmt: skip
    assert (posted.accepted, posted.rejected) == (3, 7)
    assert posted.rejected_by_reason == {
        "invalid_utr": 1, "backdated": 1, "future_date": 1, "unknown_loan": 1,
        "amount_out_of_range": 1, "loan_not_payable": 1, "duplicate_utr_in_file": 1,
    }  # fmt: skip
    assert len(posted.overpaid) == 1
    with db.begin() as conn:
        seed_collections(conn, settings)  # the posted sample is not written again
    assert not (inbox / SAMPLE_FILE).exists()
