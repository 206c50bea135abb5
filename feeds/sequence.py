"""Sequence tracking per source: gaps, duplicates and out-of-order events.

Every source numbers its events 0, 1, 2, ... (`seq`). The tracker keeps, per
`source_id`, the next expected number and the ranges still missing:

- `seq == expected`: in order.
- `seq > expected`: a GAP; `expected .. seq-1` become missing, and the record
  gets `Flag.GAP_BEFORE`.
- `seq < expected` and missing: OUT_OF_ORDER (a late arrival filling a gap).
- `seq < expected` and not missing: DUPLICATE.

A source is *clean* while nothing is missing. Missing numbers that stay
missing for `reorder_window` further events are given up as LOST; when the
last missing range is filled or given up the source is RECOVERED.

One absurd number must not poison the accounting for good (a frame with a seq
near 2^64 once made every later record a duplicate): a jump of more than
`max_jump` either way is held as a suspect and counted as an OUTLIER; if the
next record follows it (suspect + 1) the source really restarted its numbering
there, and it is re-based (a RESET, nothing counted missing); otherwise the
source goes on from where it was. A hook
`on_event(kind, source_id, seq, expected)` lets a strategy react (stop quoting
an instrument while its source is not clean); `reset()` forgets a source
after a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numba
import numpy as np

from redline.feeds.events import Flag


@numba.njit(cache=True, nogil=True)
def _one_source_in_order(src: np.ndarray, seq: np.ndarray) -> bool:
    """All records from src[0]'s source, numbered seq[0], seq[0]+1, ...

    One compiled pass: the numpy version (two compares, a subtract, two
    reductions) cost ~8 µs for 64 records here, this ~1 µs.
    """
    s0 = src[0]
    for i in range(1, len(seq)):  # noqa: SIM110 (numba compiles loops, not generators)
        if src[i] != s0 or seq[i] != seq[i - 1] + 1:
            return False
    return True


class SeqEvent(IntEnum):
    GAP = 0
    DUPLICATE = 1
    OUT_OF_ORDER = 2
    LOST = 3  # a missing range given up after `reorder_window` events
    RECOVERED = 4  # nothing missing any more
    OUTLIER = 5  # a number too far from the expected one: ignored
    RESET = 6  # the source restarted its numbering (a far jump, then its successor)


SeqHook = Callable[[SeqEvent, int, int, int], None]


@dataclass
class SourceState:
    expected: int = 0
    started: bool = False
    missing: list[list[int]] = field(default_factory=list)  # sorted [lo, hi) ranges
    gaps: int = 0  # gap events
    missing_total: int = 0  # events skipped over by gaps
    duplicates: int = 0
    out_of_order: int = 0
    lost: int = 0  # events given up
    outliers: int = 0  # numbers too far off, ignored
    resets: int = 0  # numbering restarted by the source
    suspect: int | None = None  # the last far-off number, until the next record judges it

    @property
    def clean(self) -> bool:
        return not self.missing and self.suspect is None


class SequenceTracker:
    """Per-source sequence checks over batches of records (any event dtype).

    `first_seq`: the number a new source is expected to start at; None takes
    the first number seen as the start (joining a stream mid-way).
    `mark_gaps`: set Flag.GAP_BEFORE on the record after a gap (a recorder
    turns it off to store records exactly as they arrived).
    """

    def __init__(
        self,
        on_event: SeqHook | None = None,
        *,
        reorder_window: int = 1024,
        first_seq: int | None = 0,
        mark_gaps: bool = True,
        max_jump: int = 1 << 20,
    ) -> None:
        if reorder_window < 1:
            raise ValueError(f"SequenceTracker: reorder_window must be >= 1, got {reorder_window}")
        self.on_event = on_event
        self.reorder_window = reorder_window
        self.first_seq = first_seq
        self.mark_gaps = mark_gaps
        self.max_jump = max_jump  # 1M: 20 s of a 50k events/s source
        self.sources: dict[int, SourceState] = {}

    def state(self, source_id: int) -> SourceState:
        st = self.sources.get(source_id)
        if st is None:
            st = self.sources[source_id] = SourceState()
        return st

    def is_clean(self, source_id: int) -> bool:
        st = self.sources.get(source_id)
        return st is None or st.clean

    def reset(self, source_id: int) -> None:
        """Forget `source_id` (e.g. after a snapshot): its next event starts it afresh."""
        self.sources.pop(source_id, None)

    def totals(self) -> dict[str, int]:
        s = self.sources.values()
        return {
            "gaps": sum(x.gaps for x in s),
            "missing": sum(x.missing_total for x in s),
            "duplicates": sum(x.duplicates for x in s),
            "out_of_order": sum(x.out_of_order for x in s),
            "lost": sum(x.lost for x in s),
            "outliers": sum(x.outliers for x in s),
            "resets": sum(x.resets for x in s),
            "sources_not_clean": sum(not x.clean for x in s),
        }

    def observe(self, records: np.ndarray) -> None:
        """Check a batch in order; flags records that follow a gap with GAP_BEFORE."""
        n = len(records)
        if n == 0:
            return
        src = records["source_id"]
        seq = records["seq"]
        s0 = int(src[0])
        st = self.sources.get(s0)
        # Fast path (the common case): one clean source, exactly the next numbers.
        if st is not None and st.started and st.clean and int(seq[0]) == st.expected:
            if n == 1:
                st.expected += 1
                return
            if _one_source_in_order(src, seq):
                st.expected = int(seq[-1]) + 1
                return
        flags = records["flags"]
        for i in range(n):
            if self._one(int(src[i]), int(seq[i])) and self.mark_gaps:
                flags[i] |= Flag.GAP_BEFORE

    def observe_run(
        self, records: np.ndarray, source_id: int, first: int, last: int, in_order: bool
    ) -> None:
        """`observe` for a batch already summarised (the compiled ZeroMQ loop does
        it while the records are hot): `in_order` = every record from `source_id`,
        numbered `first` to `last` one after the other. The common case reads no record.
        """
        st = self.sources.get(source_id)
        if in_order and st is not None and st.started and st.clean and first == st.expected:
            st.expected = last + 1
        else:
            self.observe(records)

    def _emit(self, kind: SeqEvent, source_id: int, seq: int, expected: int) -> None:
        if self.on_event is not None:
            self.on_event(kind, source_id, seq, expected)

    def _one(self, source_id: int, seq: int) -> bool:
        """Account for one event; True when a gap opened just before it."""
        st = self.state(source_id)
        if not st.started:
            st.started = True
            st.expected = seq if self.first_seq is None else self.first_seq
        if st.suspect is not None:
            suspect, st.suspect = st.suspect, None
            if seq == suspect + 1:  # it was no outlier: the source restarted its numbering
                st.outliers -= 1
                st.resets += 1
                st.missing.clear()
                st.expected = seq + 1
                self._emit(SeqEvent.RESET, source_id, suspect, st.expected)
                return False
        expected = st.expected
        if abs(seq - expected) > self.max_jump and not self._is_missing(st, seq):
            st.suspect = seq
            st.outliers += 1
            self._emit(SeqEvent.OUTLIER, source_id, seq, expected)
            return False
        if seq == expected:
            st.expected = seq + 1
            if st.missing:
                self._give_up(source_id, st)
            return False
        if seq > expected:
            st.gaps += 1
            st.missing_total += seq - expected
            st.missing.append([expected, seq])
            st.expected = seq + 1
            self._emit(SeqEvent.GAP, source_id, seq, expected)
            self._give_up(source_id, st)
            return True
        for k, (lo, hi) in enumerate(st.missing):
            if lo <= seq < hi:
                st.out_of_order += 1
                # split the range around the late arrival
                parts = [r for r in ([lo, seq], [seq + 1, hi]) if r[0] < r[1]]
                st.missing[k : k + 1] = parts
                self._emit(SeqEvent.OUT_OF_ORDER, source_id, seq, expected)
                if not st.missing:
                    self._emit(SeqEvent.RECOVERED, source_id, seq, expected)
                return False
        st.duplicates += 1
        self._emit(SeqEvent.DUPLICATE, source_id, seq, expected)
        return False

    @staticmethod
    def _is_missing(st: SourceState, seq: int) -> bool:
        return any(lo <= seq < hi for lo, hi in st.missing)

    def _give_up(self, source_id: int, st: SourceState) -> None:
        """Drop missing ranges older than the reorder window."""
        horizon = st.expected - self.reorder_window
        if st.missing[0][0] >= horizon:
            return
        while st.missing and st.missing[0][0] < horizon:
            lo, hi = st.missing[0]
            if hi <= horizon:
                st.missing.pop(0)
                st.lost += hi - lo
                self._emit(SeqEvent.LOST, source_id, lo, st.expected)
            else:
                st.missing[0][0] = horizon
                st.lost += horizon - lo
                self._emit(SeqEvent.LOST, source_id, lo, st.expected)
        if not st.missing:
            self._emit(SeqEvent.RECOVERED, source_id, st.expected - 1, st.expected)
