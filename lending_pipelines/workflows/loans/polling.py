"""One polling cycle: every active, fully configured partner's Fineract is asked for its
approved loans, concurrently (bounded), each partner within its own time budget. A partner that
times out, answers 5xx, refuses the credentials or sends malformed JSON is recorded as a failed
poll attempt with the error; the others' loans are tracked regardless. Within a partner, a
malformed loan is stored as a bad record and the rest of its page is tracked; a server whose
totalFilteredRecords disagrees with its pages is recorded on the attempt.

Database work is set-based: one statement opens every partner's poll attempt; as each partner
finishes, one statement upserts all its loans and one closes its attempt (in a worker thread, so
the database works while the other partners are still being polled). Used by the
`loan_tracking` asset and by bench/polling.py.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from ...crypto import SecretBox
from ...db import loans as loans_db
from ...db.fineract_records import record_listing
from ...db.loans import Partner, PollOutcome
from ...partners.fineract import (
    BadLoanRecord,
    FineractClients,
    FineractError,
    FineractLoan,
    LoanStatusId,
)


@dataclass(frozen=True)
class PartnerPoll:
    partner_id: str
    ok: bool
    seconds: float
    finished_at: datetime
    loans: list[FineractLoan] = field(default_factory=list, repr=False)
    pages: int = 0
    error: str | None = None
    new_loans: int = 0
    bad_records: list[BadLoanRecord] = field(default_factory=list)
    # The partner's stored secrets cannot be decrypted with LENDING_ENCRYPTION_KEY.
    credentials_error: str | None = None
    total_reported: int = 0
    records_received: int = 0

    @property
    def total_mismatch(self) -> bool:
        return self.ok and self.total_reported != self.records_received


@dataclass(frozen=True)
class PollingCycle:
    polls: list[PartnerPoll]
    seconds: float

    @property
    def new_by_partner(self) -> dict[str, int]:
        return {poll.partner_id: poll.new_loans for poll in self.polls}

    @property
    def failed(self) -> list[PartnerPoll]:
        return [poll for poll in self.polls if not poll.ok]

    @property
    def loans_seen(self) -> int:
        return sum(len(poll.loans) for poll in self.polls)

    @property
    def new_loans(self) -> int:
        return sum(self.new_by_partner.values())

    @property
    def bad_records(self) -> int:
        return sum(len(poll.bad_records) for poll in self.polls)

    @property
    def total_mismatches(self) -> list[PartnerPoll]:
        return [poll for poll in self.polls if poll.total_mismatch]


async def _poll_one(
    partner: Partner,
    fineract: FineractClients,
    tls: ssl.SSLContext,
    gate: asyncio.Semaphore,
    timeout_seconds: float,
    record: Callable[[PartnerPoll], int] | None,
) -> PartnerPoll:
    poll = await _fetch(partner, fineract, tls, gate, timeout_seconds)
    if record is None:
        return poll
    # Written in a worker thread, outside the gate: the database works while the event loop
    # keeps polling the other partners.
    return replace(poll, new_loans=await asyncio.to_thread(record, poll))


async def _fetch(
    partner: Partner,
    fineract: FineractClients,
    tls: ssl.SSLContext,
    gate: asyncio.Semaphore,
    timeout_seconds: float,
) -> PartnerPoll:
    async with gate:
        started = time.monotonic()
        error: str | None = None
        try:
            if partner.config_error:
                raise ValueError(partner.config_error)
            client = fineract.client_for(
                base_url=partner.fineract_base_url,
                tenant_id=partner.fineract_tenant_id,
                username=partner.fineract_username,
                password=partner.fineract_password,
                filter_mode=partner.fineract_filter_mode,
            )
            # One small pool per partner: httpcore scans its whole pool for every request, so
            # one shared pool of hundreds of connections costs more CPU than the polling.
            limits = httpx.Limits(max_connections=fineract.page_concurrency)
            async with httpx.AsyncClient(verify=tls, limits=limits) as http:
                listing = await asyncio.wait_for(
                    client.alist_loans(LoanStatusId.APPROVED, http=http), timeout_seconds
                )
        except TimeoutError:
            error = f"partner {partner.id!r}: no complete answer within {timeout_seconds}s"
        except FineractError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one partner's failure never stops the others
            error = f"partner {partner.id!r}: {type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
        finished = datetime.now(UTC)
        if error is not None:
            return PartnerPoll(
                partner.id,
                ok=False,
                seconds=seconds,
                finished_at=finished,
                error=error,
                credentials_error=partner.config_error,
            )
        return PartnerPoll(
            partner.id,
            ok=True,
            seconds=seconds,
            finished_at=finished,
            loans=listing.loans,
            pages=listing.pages,
            bad_records=listing.bad_records,
            total_reported=listing.total_reported,
            records_received=listing.records_received,
        )


async def poll_partners(
    partners: Sequence[Partner],
    fineract: FineractClients,
    *,
    concurrency: int,
    timeout_seconds: float,
    record: Callable[[PartnerPoll], int] | None = None,
) -> list[PartnerPoll]:
    """Poll partners at most `concurrency` at a time; `record(poll)` (run in a thread as each
    partner finishes) stores its result and returns how many of its loans were new."""
    tls = ssl.create_default_context()  # loading the CA bundle once, not once per partner
    gate = asyncio.Semaphore(concurrency)
    return list(
        await asyncio.gather(
            *(_poll_one(p, fineract, tls, gate, timeout_seconds, record) for p in partners)
        )
    )


def run_polling_cycle(
    engine: sa.Engine,
    box: SecretBox,
    fineract: FineractClients,
    *,
    concurrency: int,
    timeout_seconds: float,
    run_id: str | None = None,
) -> PollingCycle:
    """Poll every pollable partner and record the cycle. Every partner's attempt is opened
    before polling (a crashed cycle leaves them visibly unfinished); as each partner finishes,
    its loans are upserted (one statement) and its attempt closed, in one transaction."""
    started = time.monotonic()
    with engine.begin() as conn:
        partners = loans_db.pollable_partners(conn, box)
        attempts = loans_db.start_poll_attempts(conn, [p.id for p in partners], run_id)

    def record(poll: PartnerPoll) -> int:
        attempt = attempts[poll.partner_id]
        with engine.begin() as conn:
            new = 0
            if poll.ok:
                batch = [(poll.partner_id, attempt, poll.loans)]
                new = loans_db.upsert_tracked_loans(conn, batch).get(poll.partner_id, 0)
                record_listing(
                    conn,
                    partner_id=poll.partner_id,
                    attempt_id=attempt,
                    total_reported=poll.total_reported,
                    records_received=poll.records_received,
                    bad_records=poll.bad_records,
                )
            loans_db.finish_poll_attempts(
                conn,
                [
                    PollOutcome(
                        attempt_id=attempt,
                        partner_id=poll.partner_id,
                        ok=poll.ok,
                        finished_at=poll.finished_at,
                        loans_seen=len(poll.loans),
                        new_loans=new,
                        pages=poll.pages,
                        error=poll.error,
                    )
                ],
            )
        return new

    with _collector_paused():
        polls = asyncio.run(
            poll_partners(
                partners,
                fineract,
                concurrency=concurrency,
                timeout_seconds=timeout_seconds,
                record=record,
            )
        )
    return PollingCycle(polls, time.monotonic() - started)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the cycle: the loans it reads (50,000 in the
    benchmark, a few objects each) live until it ends and hold no cycles, and the collector's
    repeated passes over them took about a third of the cycle's CPU."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
