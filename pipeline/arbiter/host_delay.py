"""How late this process reads what the workers send: the host's scheduling delay, measured.

Every worker message carries the worker's send stamp; the arbiter reads it some time later.
When messages from both workers waited, that lag is the arbiter's own scheduling delay (it was
not running while they waited); one worker's old messages alone only say that worker was
stopped. A timer that wakes the arbiter late measures the same thing directly. On 2 shared
cores such pauses are 10-100 ms (FLOORS.md). Silence from a worker is only evidence of a hang
once it outlasts the heartbeat timeout plus what the host itself just did to the arbiter
(recovery.py: HEARTBEAT_SLACK times this peak). The estimate is a peak that halves every
`half_life_ns`, so one pause widens the margin for a while and a quiet host gets its tight
timeouts back.
"""

from __future__ import annotations


class HostDelay:
    __slots__ = ("_at", "half_life_ns", "peak_ns", "samples")

    def __init__(self, half_life_ns: int = 1_000_000_000) -> None:
        self.half_life_ns = half_life_ns
        self.peak_ns = 0.0
        self.samples = 0
        self._at = 0  # monotonic ns of the last decay

    def observe(self, lag_ns: int, now: int) -> None:
        """A message sent `lag_ns` before it was read (clock noise below 0 counts as 0)."""
        self.decay(now)
        self.samples += 1
        if lag_ns > self.peak_ns:
            self.peak_ns = float(lag_ns)

    def decay(self, now: int) -> None:
        dt = now - self._at
        if dt > 0:
            if self.peak_ns:
                self.peak_ns *= 0.5 ** (dt / self.half_life_ns)
            self._at = now
