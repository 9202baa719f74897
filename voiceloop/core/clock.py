"""The one clock every timestamp comes from.

Timestamps are integers in nanoseconds from ``time.perf_counter_ns()``: monotonic,
never jumps with NTP, and precise enough to report sub-millisecond stages.
Tests swap in :class:`ManualClock`.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class MonotonicClock:
    """The real clock."""

    def now_ns(self) -> int:
        return time.perf_counter_ns()


class ManualClock:
    """A clock that only moves when told to (unit tests)."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance_ms(self, ms: float) -> None:
        self._now += int(ms * 1_000_000)


def ns_to_ms(ns: int | float) -> float:
    return ns / 1_000_000.0


DEFAULT_CLOCK: Clock = MonotonicClock()
