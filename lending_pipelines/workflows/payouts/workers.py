"""Several chunk workers paying one batch at once, as threads of one process.

A worker's time is spent waiting on Stripe (the GIL is released during the HTTP call), so
threads give the parallelism step processes gave, without a process start and a code-location
import per worker (measured: ~1 s per step process plus a forkserver import, bench/runs.py).

Isolation where it matters is kept by the database, not by processes: each item is claimed and
its idempotency key committed before Stripe is called and recorded in a second transaction,
so a worker that raises leaves the other workers to finish and record their calls, and a
process that dies leaves leased chunks the next run takes over and keys it replays
(`run_chunk_worker`, tests/e2e/test_payouts_crash.py).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from ...partners.stripe import StripeConnectClient
from .processing import DuplicateTransferError, WorkerReport, run_chunk_worker


def pay_batch_with_workers(
    engine: sa.Engine,
    batch_id: int,
    new_client: Callable[[], StripeConnectClient],
    *,
    workers: int,
    run_id: str | None,
    lease_seconds: float,
) -> list[WorkerReport]:
    """Run `workers` chunk workers at once, each with its own Stripe client, until no chunk of
    the batch is left; then raise the first error any of them raised (a duplicate transfer
    first: it must stop the run), after every other worker has finished."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="payout-worker") as pool:
        futures = [
            pool.submit(
                run_chunk_worker,
                engine,
                batch_id,
                new_client(),
                run_id=run_id,
                lease_seconds=lease_seconds,
            )
            for _ in range(workers)
        ]
    errors = [future.exception() for future in futures if future.exception() is not None]
    if errors:
        raise next((e for e in errors if isinstance(e, DuplicateTransferError)), errors[0])
    return [future.result() for future in futures]
