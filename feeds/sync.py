"""Time alignment of sensor streams with different rates and latencies into fused frames.

Two policies, one output (`Frames`: one row per frame, one column per stream):

- `ApproximateSync`: sets of one record per stream matched by source time (`ts_event`), in the
  spirit of ROS message_filters' ApproximateTime. Each stream is a queue in `ts_event` order.
  The heads of the queues are the best set that contains the earliest head (every other head is
  the earliest record its stream can still give). The earliest head is dropped when its
  stream's next record makes a set of shorter span; the set is emitted once that next record
  shows it cannot (or another head shares the earliest stamp, so nothing can). A set wider than
  `slop_ns` is never emitted: its earliest head is dropped. A decision is taken only on what no
  later record can change, so replay gives the same sets whatever the batching or the order in
  which streams arrive. `flush()` at the end of a recording emits the last set.
- `LatestSync`: one frame per record of a trigger stream, holding the latest record of every
  stream that has arrived by then (arrival order). An input older than its stream's `max_age_ns`
  (trigger `ts_event` minus its `ts_event`) is flagged stale, one never seen is flagged missing;
  either is blanked (values NaN) so it is never reused past its age.

Records a stream gives out of `ts_event` order (or with a repeated stamp) are dropped and counted
(`out_of_order`), like records of sensors no stream names (`ignored`); `ApproximateSync` counts
records it leaves unmatched (`unmatched`). Nothing is lost without a count.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from redline.feeds import events as ev


class Frames(NamedTuple):
    """Fused frames: `records[i, k]` is stream k's record in frame i (SENSOR dtype)."""

    ts_ns: np.ndarray  # [n] int64: the frame's source time (latest ts_event of the set, or trigger)
    records: np.ndarray  # [n, K] SENSOR records
    stale: np.ndarray  # [n, K] bool: older than the stream's max age (blanked)
    missing: np.ndarray  # [n, K] bool: nothing from this stream yet (blanked)


def _empty_frames(k: int) -> Frames:
    return Frames(
        np.zeros(0, np.int64),
        ev.empty(ev.RecordType.SENSOR, 0).reshape(0, k),
        np.zeros((0, k), bool),
        np.zeros((0, k), bool),
    )


def _check_ids(sensor_ids: tuple[int, ...]) -> None:
    if not sensor_ids or len(set(sensor_ids)) != len(sensor_ids):
        raise ValueError(f"sensor_ids {sensor_ids!r}: give at least one id, each once")


class _Ordered:
    """Per-stream ordering check shared by both policies: the last `ts_event` kept per stream."""

    def __init__(self, sensor_ids: tuple[int, ...]):
        _check_ids(sensor_ids)
        self.sensor_ids = tuple(int(s) for s in sensor_ids)
        self.last_ts = np.full(len(sensor_ids), np.iinfo(np.int64).min, np.int64)
        self.out_of_order = np.zeros(len(sensor_ids), np.int64)
        self.ignored = 0

    def stream_of(self, recs: np.ndarray) -> np.ndarray:
        """Stream index per record (-1: dropped, counted), in arrival order."""
        assert recs.dtype == ev.SENSOR_DTYPE, recs.dtype
        stream = np.full(recs.size, -1, np.int64)
        for k, sid in enumerate(self.sensor_ids):
            rows = np.flatnonzero(recs["sensor_id"] == sid)
            ts = recs["ts_event"][rows]
            before = np.maximum.accumulate(np.concatenate(([self.last_ts[k]], ts)))[:-1]
            keep = ts > before
            self.out_of_order[k] += int((~keep).sum())
            stream[rows[keep]] = k
            if rows.size:
                self.last_ts[k] = max(self.last_ts[k], int(ts.max()))
        self.ignored += int(np.isin(recs["sensor_id"], self.sensor_ids, invert=True).sum())
        return stream


@nb.njit(cache=True)
def _match(ts, start, end, slop_ns, out, unmatched):  # pragma: no cover - compiled
    """Match sets on the queues `ts[start[k]:end[k]]`; write head indices to `out` [cap, K].
    Advances `start` past what was used or dropped; returns the number of sets."""
    k_n = start.size
    n = 0
    while True:
        for k in range(k_n):
            if start[k] >= end[k]:
                return n
        e = 0
        lo = ts[start[0]]
        hi = lo
        for k in range(1, k_n):
            t = ts[start[k]]
            if t < lo:
                e, lo = k, t
            hi = max(hi, t)
        if hi - lo > slop_ns:  # the best set holding e's head is too wide: e's head goes
            start[e] += 1
            unmatched[e] += 1
            continue
        others_lo = hi
        ties = 0
        for k in range(k_n):
            if k != e:
                t = ts[start[k]]
                others_lo = min(others_lo, t)
                ties += t == lo
        if ties == 0:  # e alone holds the earliest stamp: its next record may do better
            if start[e] + 1 >= end[e]:
                return n  # wait for it
            nxt = ts[start[e] + 1]
            if max(hi, nxt) - min(others_lo, nxt) < hi - lo:
                start[e] += 1
                unmatched[e] += 1
                continue
        for k in range(k_n):
            out[n, k] = start[k]
            start[k] += 1
        n += 1


class _Counted:
    """What both policies count about their input (`_Ordered`): per stream out of order, and
    records of sensors no stream names."""

    _order: _Ordered

    @property
    def out_of_order(self) -> np.ndarray:
        return self._order.out_of_order

    @property
    def ignored(self) -> int:
        return self._order.ignored


class ApproximateSync(_Counted):
    """Sets of one record per stream, matched by `ts_event` within `slop_ns` (module docstring)."""

    def __init__(self, sensor_ids: tuple[int, ...], slop_ns: int):
        if not 0 <= slop_ns <= 3_600_000_000_000:
            raise ValueError(f"slop_ns {slop_ns} is out of range; expected 0 ns to an hour")
        self._order = _Ordered(sensor_ids)
        self.slop_ns = int(slop_ns)
        self.unmatched = np.zeros(len(sensor_ids), np.int64)
        self._queues = [ev.empty(ev.RecordType.SENSOR, 0) for _ in sensor_ids]

    def feed(self, recs: np.ndarray) -> Frames:
        """Take SENSOR records in arrival order; return the sets now decided."""
        stream = self._order.stream_of(recs)
        for k in range(len(self._queues)):
            self._queues[k] = np.concatenate((self._queues[k], recs[stream == k]))
        return self._emit()

    def flush(self) -> Frames:
        """End of the streams: emit the last set if it fits the slop; count what is left."""
        k_n = len(self._queues)
        out = _empty_frames(k_n)
        if all(q.size for q in self._queues):
            heads = np.array([q["ts_event"][0] for q in self._queues])
            if heads.max() - heads.min() <= self.slop_ns:
                recs = np.stack([q[:1] for q in self._queues], axis=1)
                out = Frames(heads.max(keepdims=True), recs, *(np.zeros((1, k_n), bool),) * 2)
                self._queues = [q[1:] for q in self._queues]
        self.unmatched += [q.size for q in self._queues]
        self._queues = [q[:0] for q in self._queues]
        return out

    def _emit(self) -> Frames:
        sizes = np.array([q.size for q in self._queues], np.int64)
        end = np.cumsum(sizes)
        start = end - sizes
        ts = np.concatenate([q["ts_event"] for q in self._queues])
        out = np.zeros((int(sizes.min()), sizes.size), np.int64)
        n = _match(ts, start, end, self.slop_ns, out, self.unmatched)
        flat = np.concatenate(self._queues)
        recs = flat[out[:n]]  # [n, K]
        self._queues = [flat[s:e] for s, e in zip(start, end, strict=True)]
        blank = np.zeros((n, sizes.size), bool)
        return Frames(recs["ts_event"].max(axis=1, initial=0), recs, blank, blank)


class LatestSync(_Counted):
    """One frame per trigger record: the latest of each stream, flagged stale past its max age."""

    def __init__(self, sensor_ids: tuple[int, ...], trigger: int, max_age_ns: tuple[int, ...]):
        self._order = _Ordered(sensor_ids)
        if trigger not in self._order.sensor_ids:
            raise ValueError(f"trigger sensor {trigger} is not one of sensor_ids {sensor_ids}")
        if len(max_age_ns) != len(sensor_ids) or min(max_age_ns) <= 0:
            raise ValueError(f"max_age_ns {max_age_ns!r}: give one positive age per sensor id")
        self.trigger = self._order.sensor_ids.index(trigger)
        self.max_age_ns = np.asarray(max_age_ns, np.int64)
        self._latest = ev.empty(ev.RecordType.SENSOR, len(sensor_ids))  # [K], carried over
        self._seen = np.zeros(len(sensor_ids), bool)

    def feed(self, recs: np.ndarray) -> Frames:
        """Take SENSOR records in arrival order; return one frame per trigger record."""
        stream = self._order.stream_of(recs)
        k_n = len(self._order.sensor_ids)
        pos = np.arange(recs.size)
        rows = np.flatnonzero(stream == self.trigger)  # the frames, in arrival order
        # Carry-over records sit before the batch: index -1 - k in a combined table.
        table = np.concatenate((recs, self._latest))
        picked = np.empty((rows.size, k_n), np.int64)
        seen = np.empty((rows.size, k_n), bool)
        for k in range(k_n):
            last = np.maximum.accumulate(np.where(stream == k, pos, -1))  # latest arrived, per row
            at = last[rows]
            picked[:, k] = np.where(at >= 0, at, recs.size + k)
            seen[:, k] = (at >= 0) | self._seen[k]
            if (stream == k).any():
                self._latest[k] = recs[np.flatnonzero(stream == k)[-1]]
                self._seen[k] = True
        out = table[picked]  # [n, K]
        ts = recs["ts_event"][rows]
        stale = seen & (ts[:, None] - out["ts_event"] > self.max_age_ns)
        missing = ~seen
        out["values"][stale | missing] = np.nan
        return Frames(ts, out, stale, missing)
