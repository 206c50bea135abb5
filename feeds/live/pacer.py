"""Pacing: wait until a deadline, sleeping most of the way and spinning the rest.

`time.sleep` on Linux wakes 50-100 µs late, and more on a busy host, so the
pacer sleeps until `spin_ns` before the deadline and spins on the monotonic
clock for the last stretch. It reports how late each wait ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redline.feeds.clock import Clock

DEFAULT_SPIN_NS = 200_000  # covers the usual sleep overshoot on a 2-vCPU VM


class Pacer:
    """`wait_until(deadline_ns)` on `clock.monotonic_ns()`; returns the lateness (ns, >= 0)."""

    __slots__ = ("clock", "sleep", "spin_ns")

    def __init__(
        self,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
        spin_ns: int = DEFAULT_SPIN_NS,
    ) -> None:
        if spin_ns < 0:
            raise ValueError(f"Pacer: spin_ns must be >= 0, got {spin_ns}")
        self.clock = clock
        self.sleep = sleep
        self.spin_ns = spin_ns

    def wait_until(self, deadline_ns: int) -> int:
        mono = self.clock.monotonic_ns
        left = deadline_ns - mono()
        if left > self.spin_ns:
            self.sleep((left - self.spin_ns) / 1e9)
        while (now := mono()) < deadline_ns:
            pass
        return now - deadline_ns
