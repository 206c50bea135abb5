"""Sequence figures of one source in receive order, by what its numbers mean.

`redline inspect` keeps one `SourceSequence` per source (per instrument of the source where
its numbers count per instrument) and sums them per source (`per_source`). The semantics
are `feeds/importers/semantics.py`'s; the figures are documented in `inspect_files.py`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from redline.feeds.events import Flag
from redline.feeds.importers import semantics as sem

_GAP = int(Flag.GAP_BEFORE)


@dataclass
class SourceSequence:
    """Receive-order state of one source (or one instrument of it): the highest seq seen and,
    when its numbers are contiguous, the holes below it."""

    sequence: str = sem.CONTIGUOUS
    events: int = 0
    seq_first: int = -1
    seq_last: int = -1  # highest seen
    late: int = 0
    duplicates: int = 0
    ts_event_back: int = 0
    ts_event_max: int = np.iinfo(np.int64).min
    holes: list[list[int]] = field(default_factory=list)  # sorted [first, last] missing
    gaps_flagged: int = 0  # "per event": gaps the importer found by the venue's rule

    def add(self, seq: np.ndarray, ts_event: np.ndarray, flags: np.ndarray) -> None:
        seq = seq.astype(np.int64)  # seq numbers stay below 2**63 in practice
        self.events += len(seq)
        self.seq_first = (
            int(seq.min()) if self.seq_first < 0 else min(self.seq_first, int(seq.min()))
        )
        # highest seq seen before each record
        before = np.empty_like(seq)
        before[0] = self.seq_last
        np.maximum.accumulate(seq[:-1], out=before[1:])
        np.maximum(before[1:], self.seq_last, out=before[1:])
        if self.sequence in (sem.CONTIGUOUS, sem.PER_INSTRUMENT):
            late = seq <= before
            # in-order records: a jump opens a hole
            jump = ~late & (seq > before + 1) & (before >= 0)
            for a, b in zip((before[jump] + 1).tolist(), (seq[jump] - 1).tolist(), strict=True):
                self.holes.append([a, b])  # opened in increasing order: the list stays sorted
            for s in seq[late].tolist():  # rare: one Python step per late record
                self._fill(s)
            self.late += int(late.sum())
        elif self.sequence != sem.NONE:  # ids may repeat (one event) and jump: only back is late
            self.late += int((seq < before).sum())
            if self.sequence == sem.PER_EVENT:
                self.gaps_flagged += int(np.count_nonzero(flags & _GAP))
        self.seq_last = max(self.seq_last, int(seq.max()))
        ts_event = ts_event[ts_event != 0]  # 0: no event time given, so it cannot go back
        if not len(ts_event):
            return
        tmax = np.empty_like(ts_event)
        tmax[0] = self.ts_event_max
        np.maximum.accumulate(ts_event[:-1], out=tmax[1:])
        np.maximum(tmax[1:], self.ts_event_max, out=tmax[1:])
        self.ts_event_back += int((ts_event < tmax).sum())
        self.ts_event_max = max(self.ts_event_max, int(ts_event.max()))

    def _fill(self, s: int) -> None:
        i = bisect.bisect_right(self.holes, [s, np.iinfo(np.int64).max]) - 1
        if i < 0 or self.holes[i][1] < s:
            self.duplicates += 1
            return
        a, b = self.holes[i]
        if a == b:
            del self.holes[i]
        elif s == a:
            self.holes[i][0] = a + 1
        elif s == b:
            self.holes[i][1] = b - 1
        else:
            self.holes[i : i + 1] = [[a, s - 1], [s + 1, b]]

    def report(self) -> dict[str, Any]:
        contiguous = self.sequence in (sem.CONTIGUOUS, sem.PER_INSTRUMENT)
        return {
            "sequence": self.sequence,
            "events": self.events,
            "seq_first": self.seq_first,
            "seq_last": self.seq_last,
            "gaps": len(self.holes) if contiguous else self.gaps_flagged,
            "missing": sum(b - a + 1 for a, b in self.holes) if contiguous else None,
            "late": self.late,
            "duplicates": self.duplicates,
            "ts_event_back": self.ts_event_back,
        }


def per_source(states: dict[tuple[int, int], SourceSequence]) -> dict[str, dict[str, Any]]:
    """One report per source; a source checked per instrument sums its instruments."""
    out: dict[str, dict[str, Any]] = {}
    for (s, _), st in sorted(states.items()):
        r = st.report()
        have = out.get(str(s))
        if have is None:
            out[str(s)] = r
            continue
        have["seq_first"] = min(have["seq_first"], r["seq_first"])
        have["seq_last"] = max(have["seq_last"], r["seq_last"])
        for k in ("events", "gaps", "late", "duplicates", "ts_event_back"):
            have[k] += r[k]
        if have["missing"] is not None:
            have["missing"] += r["missing"]
    return out
