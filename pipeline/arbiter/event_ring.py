"""The last R events the arbiter forwarded, kept to rebuild a restarted worker's state.

A restarted worker gets its peer's snapshot as of event E plus every event after E from here;
with no healthy peer it gets the whole ring replayed onto empty state (exact for features whose
window is shorter than the ring). Records live in fixed `SLOT`-byte rows preallocated once, so
`push` is one memcpy and a replay is a contiguous slice.
"""

from __future__ import annotations

import numpy as np

from redline.feeds.wire.frames import SLOT


class EventRing:
    __slots__ = ("_nos", "_rtypes", "_slots", "capacity", "last")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"EventRing capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._slots = np.zeros((capacity, SLOT), np.uint8)  # [R, SLOT]
        self._rtypes = np.zeros(capacity, np.uint8)
        self._nos = np.zeros(capacity, np.uint64)
        self.last = 0  # newest event number held; event numbers start at 1

    def push(self, event_no: int, rtype: int, record: np.ndarray | memoryview | bytes) -> None:
        """Store event `event_no` (must be last + 1)."""
        if event_no != self.last + 1:
            raise ValueError(f"EventRing.push: event {event_no} after {self.last}, expected +1")
        i = event_no % self.capacity
        raw = np.frombuffer(record, np.uint8)
        self._slots[i, : raw.size] = raw
        self._rtypes[i] = rtype
        self._nos[i] = event_no
        self.last = event_no

    def push_many(self, first_no: int, rtype: int, records: np.ndarray) -> None:
        """Store events first_no.. of one type: records [n, itemsize] uint8 (one copy per
        contiguous run, at most two: the ring may wrap)."""
        if first_no != self.last + 1:
            raise ValueError(
                f"EventRing.push_many: event {first_no} after {self.last}, expected +1"
            )
        n, size = records.shape
        if n > self.capacity:  # only the newest `capacity` can be held
            first_no, records, n = (
                first_no + n - self.capacity,
                records[-self.capacity :],
                self.capacity,
            )
        i = first_no % self.capacity
        head = min(n, self.capacity - i)
        for dst, src, k in ((i, 0, head), (0, head, n - head)):
            if k:
                self._slots[dst : dst + k, :size] = records[src : src + k]
                self._rtypes[dst : dst + k] = rtype
                self._nos[dst : dst + k] = np.arange(first_no + src, first_no + src + k)
        self.last = first_no + n - 1

    @property
    def first(self) -> int:
        """Oldest event number still held (1 when nothing was overwritten yet)."""
        return max(1, self.last - self.capacity + 1)

    def since(self, after: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rtypes, event numbers, slots) of every event after `after`, oldest first.

        Raises LookupError when some of them were already overwritten."""
        if after < self.first - 1:
            raise LookupError(
                f"EventRing: events {after + 1}..{self.first - 1} were overwritten "
                f"(capacity {self.capacity}); resync from a newer snapshot"
            )
        n = self.last - after
        idx = (np.arange(after + 1, self.last + 1, dtype=np.int64) % self.capacity)[:n]
        return self._rtypes[idx], self._nos[idx], self._slots[idx]
