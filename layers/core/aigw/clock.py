"""Time in one place: UTC epoch seconds, so tests can move it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> int:
    return int(time.time())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def now_precise() -> float:
    """Epoch seconds with their fraction, for intervals shorter than a second (a lease's
    entitlement check). Tests that move time move this together with :func:`now`."""
    return time.time()


def monotonic() -> float:
    """Seconds on a clock that never goes back, for the ages of cached entries."""
    return time.monotonic()


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def iso(epoch: int | float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")
