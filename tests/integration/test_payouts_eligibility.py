"""The set-based eligibility SQL agrees with the plain eligibility function creator by creator
on random worlds (ledgers, holds, chargebacks, requests, reservations, account states), and the
shared request-rate limit paces workers across connections."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.db.rate_limit import PostgresRateLimiter
from lending_pipelines.domain.payouts import (
    CreatorState,
    LedgerEntry,
    PayoutRules,
    WithdrawalRequest,
    evaluate_creator,
)

PAYOUT_DATE = date(2026, 5, 15)
AS_OF = datetime(2026, 5, 15, 2, tzinfo=UTC)
RULES = PayoutRules(AS_OF, minimum_tokens=200, token_rate=Decimal("0.033"), currency="USD")


def random_world(engine, seed: int, creators: int = 120) -> dict[int, CreatorState]:
    rng = random.Random(seed)
    expected: dict[int, CreatorState] = {}
    with engine.begin() as conn:
        ids = payouts_db.upsert_creators(
            conn,
            [
                {
                    "external_ref": f"r{seed}-{n}",
                    "display_name": f"creator {n}",
                    "kyc_status": rng.choice(["verified"] * 5 + ["pending", "rejected"]),
                    "stripe_account_id": None if rng.random() < 0.1 else f"acct_r{seed}_{n}",
                    "payouts_enabled": rng.random() < 0.85,
                    "transfers_capability": rng.choice(["active"] * 6 + ["inactive", None]),
                }
                for n in range(creators)
            ],
        )
        # another payout date's open item reserves tokens for some creators
        other = conn.execute(
            sa.insert(payouts_db.payout_batches)
            .values(
                payout_date=date(2026, 5, 1),
                batch_hash=f"other-{seed}",
                currency="usd",
                token_rate=Decimal("0.033"),
            )
            .returning(payouts_db.payout_batches.c.id)
        ).scalar_one()
        rows = conn.execute(sa.select(payouts_db.creators)).all()
        for row in rows:
            entries, ledger, requests = [], [], []
            for _ in range(rng.randint(0, 6)):
                kind = rng.choice(["earning"] * 4 + ["chargeback", "adjustment"])
                tokens = rng.randint(1, 400) * (1 if kind == "earning" else rng.choice([-1, 1]))
                if kind == "chargeback":
                    tokens = -abs(tokens)
                # around the 7-day hold boundary, some exactly on it, some after the run
                created = AS_OF - timedelta(
                    days=rng.choice([30, 8, 7, 7, 6, 1, -2]), seconds=rng.choice([0, 0, 1, -1])
                )
                ledger.append(
                    {
                        "creator_id": row.id,
                        "entry_type": kind,
                        "tokens": tokens,
                        "created_at": created,
                    }
                )
            payouts_db.add_ledger_entries(conn, ledger, hold_days=7)
            for _ in range(rng.choice([0, 0, 0, 1, 2])):
                requested_at = AS_OF - timedelta(days=rng.choice([3, 1, -1]))
                requests.append(
                    {
                        "creator_id": row.id,
                        "tokens": rng.randint(1, 600),
                        "requested_at": requested_at,
                    }
                )
            payouts_db.add_withdrawal_requests(conn, requests)
            reserved = 0
            if rng.random() < 0.15:
                reserved = rng.randint(1, 300)
                conn.execute(
                    sa.insert(payouts_db.payout_items).values(
                        batch_id=other,
                        creator_id=row.id,
                        idempotency_key=f"o-{seed}-{row.id}",
                        chunk_no=0,
                        tokens=reserved,
                        amount_minor=reserved,
                        currency="usd",
                        destination_account="acct_x",
                        status=rng.choice(["pending", "failed"]),
                    )
                )
            stored_entries = conn.execute(
                sa.select(payouts_db.ledger_entries).where(
                    payouts_db.ledger_entries.c.creator_id == row.id
                )
            ).all()
            entries = [LedgerEntry(e.tokens, e.created_at, e.available_at) for e in stored_entries]
            stored_requests = conn.execute(
                sa.select(payouts_db.withdrawal_requests).where(
                    payouts_db.withdrawal_requests.c.creator_id == row.id
                )
            ).all()
            expected[row.id] = CreatorState(
                creator_id=row.id,
                kyc_status=row.kyc_status,
                stripe_account_id=row.stripe_account_id,
                payouts_enabled=row.payouts_enabled,
                transfers_capability=row.transfers_capability,
                entries=entries,
                pending_requests=[
                    WithdrawalRequest(r.id, r.tokens, r.requested_at) for r in stored_requests
                ],
                reserved_tokens=reserved,
            )
    assert len(ids) == creators
    return expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_set_based_evaluation_matches_the_rule_for_every_creator(db, seed):
    states = random_world(db, seed)
    with db.begin() as conn:
        summary = payouts_db.evaluate_eligibility(
            conn,
            payout_date=PAYOUT_DATE,
            as_of=AS_OF,
            minimum_tokens=RULES.minimum_tokens,
            token_rate=RULES.token_rate,
            currency=RULES.currency,
        )
        stored = {row.creator_id: row for row in payouts_db.eligibility_rows(conn, PAYOUT_DATE)}
    expected = {cid: evaluate_creator(state, RULES) for cid, state in states.items()}
    relevant = {
        cid: e
        for cid, e in expected.items()
        if e.eligible
        or e.available_tokens > 0
        or e.held_tokens > 0
        or e.requested_tokens is not None
    }
    assert set(stored) == set(relevant)
    for cid, e in relevant.items():
        row = stored[cid]
        assert (
            row.reason,
            row.available_tokens,
            row.held_tokens,
            row.requested_tokens,
            row.payout_tokens,
            row.amount_minor,
            tuple(row.withdrawal_request_ids),
        ) == (
            e.reason.value if e.reason else None,
            e.available_tokens,
            e.held_tokens,
            e.requested_tokens,
            e.payout_tokens,
            e.amount_minor,
            e.request_ids,
        ), f"creator {cid}"
    eligible = [e for e in expected.values() if e.eligible]
    assert summary.eligible.creators == len(eligible) > 0
    assert summary.eligible.amount_minor == sum(e.amount_minor for e in eligible)
    assert sum(o.creators for o in summary.outcomes.values()) == len(relevant)


def test_re_evaluating_a_date_replaces_the_earlier_evaluation(db):
    random_world(db, 9, creators=30)
    kwargs = dict(
        payout_date=PAYOUT_DATE,
        as_of=AS_OF,
        minimum_tokens=200,
        token_rate=Decimal("0.05"),
        currency="USD",
    )
    with db.begin() as conn:
        first = payouts_db.evaluate_eligibility(conn, **kwargs)
    with db.begin() as conn:
        second = payouts_db.evaluate_eligibility(conn, **kwargs)
        rows = payouts_db.eligibility_rows(conn, PAYOUT_DATE)
    assert first.outcomes == second.outcomes
    assert len(rows) == sum(o.creators for o in second.outcomes.values())


def test_a_batch_cannot_be_made_from_a_date_never_evaluated(db):
    with db.begin() as conn, pytest.raises(payouts_db.PayoutStateError, match="2026-05-15"):
        payouts_db.create_batch(conn, payout_date=PAYOUT_DATE, chunk_size=25)


def test_the_shared_rate_limit_paces_workers_on_separate_connections(db):
    limiter = PostgresRateLimiter(db, "test-limit", requests_per_second=50)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stamps.sort()
    assert len(stamps) == 40
    assert elapsed >= 39 / 50 * 0.95  # 40 requests at 50/s need at least 0.78 s
    window = [b - a for a, b in zip(stamps, stamps[10:], strict=False)]
    assert min(window) >= 10 / 50 * 0.8  # no 11 requests inside any 0.2 s
