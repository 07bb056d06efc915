"""Exponential backoff: how long to wait before attempt N+1 after N failed attempts.

Used by the partner clients between HTTP retries (seconds) and by the disbursement retry
schedule (next_attempt_at). A plain function of plain values so it can be tested with a table.
"""

from __future__ import annotations


def backoff_delay(
    failed_attempts: int,
    *,
    base: float,
    cap: float,
    jitter: float = 0.0,
    rand: float = 0.5,
) -> float:
    """Delay after `failed_attempts` failures: base * 2**(failed_attempts-1), capped at `cap`.

    `jitter` is the +/- fraction applied around that value (0.25 → between 75 % and 125 %) and
    `rand` a number in [0, 1) that picks the point in the band (0.5 = no change), so callers
    decide where randomness comes from. The result never exceeds `cap` and is never negative.
    """
    if failed_attempts < 1:
        raise ValueError(f"failed_attempts is {failed_attempts!r}, expected >= 1")
    if base < 0 or cap < 0:
        raise ValueError(f"base {base!r} and cap {cap!r} must be >= 0")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter is {jitter!r}, expected 0..1")
    if not 0 <= rand < 1:
        raise ValueError(f"rand is {rand!r}, expected 0 <= rand < 1")
    # 2**60 already exceeds any sensible cap; clamping the exponent avoids huge floats.
    raw = base * (2 ** min(failed_attempts - 1, 60))
    spread = raw * jitter * (2 * rand - 1)
    return max(0.0, min(cap, raw + spread))
