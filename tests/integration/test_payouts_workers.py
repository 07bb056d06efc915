"""The payout job's chunk workers are threads of one step: they pay at the same time, each item
once, and one worker's error neither stops the others nor hides (it fails the step after them)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.workflows.payouts.processing import DuplicateTransferError
from lending_pipelines.workflows.payouts.workers import pay_batch_with_workers
from tests.e2e.test_payouts_e2e import (
    AS_OF,
    PARTITION_DATE,
    add_creator,
    payout_resources,
    payout_settings,  # noqa: F401
    run_payouts,
    stripe_accounts,
)

CREATORS = 30


class InFlight:
    """Counts the Stripe transfer calls under way at once across the workers' clients."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def wrap(self, client):
        create = client.create_transfer

        def counted(**kwargs):
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                return create(**kwargs)
            finally:
                with self._lock:
                    self.now -= 1

        client.create_transfer = counted
        return client


@pytest.fixture
def batch(db, db_url, sandbox, payout_settings):  # noqa: F811
    stripe_accounts(sandbox, *[{"id": f"acct_e2e_w{n:03d}"} for n in range(CREATORS)])
    with db.begin() as conn:
        for n in range(CREATORS):
            add_creator(conn, f"w{n:03d}", earnings=[(200, AS_OF - timedelta(days=8))])
    resources = payout_resources(db_url, sandbox)
    created = run_payouts(resources, selection=["eligible_creators", "payout_batch"])
    assert created.success
    with db.connect() as conn:
        return payouts_db.get_batch(conn, PARTITION_DATE), resources["stripe_connect"]


def test_five_workers_pay_at_the_same_time_and_each_item_once(db, sandbox, batch):
    found, stripe_connect = batch
    sandbox.configure("stripe", {"processing_ms": 80})  # each transfer takes a while
    in_flight = InFlight()

    reports = pay_batch_with_workers(
        db,
        found.batch_id,
        lambda: in_flight.wrap(stripe_connect.get_client()),
        workers=5,
        run_id="threads",
        lease_seconds=60,
    )

    assert len(reports) == 5 and all(report.chunks >= 1 for report in reports)
    assert in_flight.most == 5  # every worker had a transfer under way at once
    assert sum(report.paid for report in reports) == CREATORS
    assert sandbox.state("stripe")["transfer_count"] == CREATORS


def test_a_failing_worker_lets_the_others_finish_then_fails_the_step(db, sandbox, batch):
    found, stripe_connect = batch
    made = []

    def new_client():
        client = stripe_connect.get_client()
        if made:  # the first client is fine; the second one's transfers all raise
            client.create_transfer = lambda **_: (_ for _ in ()).throw(
                DuplicateTransferError("two transfers for one item")
            )
        made.append(client)
        return client

    with pytest.raises(DuplicateTransferError):
        pay_batch_with_workers(
            db, found.batch_id, new_client, workers=2, run_id="one-fails", lease_seconds=60
        )

    # the healthy worker kept claiming chunks until none was left but the failed one's
    with db.connect() as conn:
        batch_now = payouts_db.refresh_batch_totals(conn, found.batch_id)
    assert batch_now.paid_count >= CREATORS - 3  # at most one chunk (3 items) left unpaid
    assert sandbox.state("stripe")["transfer_count"] == batch_now.paid_count
