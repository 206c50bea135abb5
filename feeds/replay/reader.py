"""Replay recorded Parquet files as one stream of record batches, merged by `ts_recv`.

    for rtype, records in replay(["quotes.parquet", "trades.parquet"]):
        ...  # records: numpy array of DTYPES[rtype], in receive order

Order: the records of all files, stably sorted by `(ts_recv, source_id, seq)`; records
equal in all three keep the order of `paths`, then their row order. That is what the
system saw, and it does not depend on how a recording was split into files. Each file
holds one record type (tagged in its schema metadata by `redline.feeds.events`); files
of different types may be mixed, and a batch then holds a run of one type.

Memory does not grow with file length: files are read `batch_rows` rows at a time and
merged under a watermark (the smallest last `ts_recv` among the chunks held); a record
is emitted once no file can still produce an earlier one. A background thread reads
ahead up to `readahead` chunks, always for the file the merge will need soonest, so
the consumer does not wait on I/O. Rows held at once: at most
`(2 * files + readahead + 1) * batch_rows`, plus any run of records that share one
`ts_recv` across a chunk boundary, plus pyarrow's buffers for the column chunks of
one row group per file. Peak RSS measured flat from 10M to 50M events
(bench/bench_replay.py, BENCHMARKS.md).

One file is streamed as read: a batch is a view of the decoded chunk, no copy, unless
records with equal `ts_recv` are out of (source_id, seq) order. Several files are
merged in rounds of ~16k records by a K-way merge (numba, without the GIL), then one
gather per record type.

Errors name the file, the column and the row. Schema problems (missing or mistyped
column, a file that is not a redline event file, an unreadable footer) are raised by
`replay()` itself, before anything is read. Data problems (input not sorted by
`ts_recv`, nulls, corrupted pages) are raised when the consumer reaches them: every
batch yielded before stays valid, and every row of the bad file before the bad row
has been yielded. Pages are checksum-verified where the writer stored checksums.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numba
import numpy as np

from redline.feeds.events import DTYPES, Batch, RecordType
from redline.feeds.replay.files import Chunk, event_files
from redline.feeds.replay.readahead import ReadAhead

_END = None  # a file's chunks are exhausted
_UNFETCHED = object()  # lookahead chunk not asked for yet
_NEVER = 1 << 64  # watermark bound of a file with nothing more to come (above any int64)
_RTYPES = {int(rt): rt for rt in RecordType}
# Records merged per round when several files interleave: small enough for the
# gather to stay in cache.
_ROUND_ROWS = 16384
_VOID64 = {dt: np.dtype((np.void, dt.itemsize)) for dt in DTYPES.values()}


class Replay:
    """An iterable replay of `paths`, with counters; see the module docstring.

    `replay()` is the plain entry point; use this class to read `files`, `skipped`
    (directory entries that are not event files) or `peak_buffered_rows` (most rows
    held by the reader and the merge at once, for memory checks)."""

    def __init__(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        batch_rows: int = 65536,
        readahead: int = 4,
    ) -> None:
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        if readahead < 1:
            raise ValueError(f"readahead must be >= 1, got {readahead}")
        self.batch_rows = batch_rows
        self.readahead = readahead
        self.files, self.skipped = event_files(paths)
        self.peak_buffered_rows = 0

    def __iter__(self) -> Iterator[Batch]:
        return self._run()

    def _run(self) -> Iterator[Batch]:
        if not self.files:
            return
        reader = ReadAhead(self.files, self.batch_rows, self.readahead)
        reader.start()
        try:
            yield from self._merge(reader)
        finally:  # also on an early break: the consumer's close() stops the thread
            reader.stop()

    def _merge(self, reader: ReadAhead) -> Iterator[Batch]:
        k = len(self.files)
        cur: list = [None] * k
        pos = [0] * k
        nxt: list = [_UNFETCHED] * k
        for i in range(k):
            cur[i] = reader.take(i)
            if isinstance(cur[i], BaseException):
                raise cur[i]
        active = [i for i in range(k) if cur[i] is not None]

        def bound(i: int) -> int:
            return _NEVER if nxt[i] is _END else int(cur[i].ts[-1])

        while active:
            # Watermark: no file can still produce a record earlier than W. The files
            # that set it need their next chunk known, to tell whether ties at W follow.
            while True:
                w = min(bound(i) for i in active)
                mins = [i for i in active if bound(i) == w]
                todo = [i for i in mins if nxt[i] is _UNFETCHED]
                if not todo:
                    break
                for i in todo:
                    nxt[i] = reader.take(i)
            inclusive = all(not isinstance(nxt[i], Chunk) or nxt[i].ts[0] > w for i in mins)
            capped = False
            if len(active) > 1:
                # Rounds of ~_ROUND_ROWS records keep the gather's working set in cache:
                # 4 files x 64k rows per round cost ~1.3x the CPU per event of 16k.
                step = max(1, min(self.batch_rows, _ROUND_ROWS) // len(active))
                cap = min(int(cur[i].ts[min(pos[i] + step, len(cur[i].ts)) - 1]) for i in active)
                if cap < w:  # every chunk reaches past cap: all records <= cap are here
                    w, inclusive, capped = cap, True, True
            held = sum(len(cur[i].records) for i in active)
            held += sum(len(c.records) for c in nxt if isinstance(c, Chunk))
            self.peak_buffered_rows = max(self.peak_buffered_rows, held + reader.queued_rows())

            segs = []
            side = "right" if inclusive else "left"
            for i in active:
                ts = cur[i].ts
                if w == _NEVER or (inclusive and ts[-1] <= w):
                    end = len(ts)
                else:
                    end = pos[i] + int(np.searchsorted(ts[pos[i] :], w, side=side))
                if end > pos[i]:
                    segs.append(
                        (self.files[i].rtype, cur[i].records[pos[i] : end], ts[pos[i] : end])
                    )
                    pos[i] = end
            if segs:
                yield from self._ordered(segs)

            for i in list(active):
                chunk = cur[i]
                if pos[i] < len(chunk.records):
                    if not capped and i in mins and isinstance(nxt[i], Chunk):
                        # ties at W run into the next chunk: join them (rare, small)
                        cur[i] = _join(chunk, pos[i], nxt[i])
                        pos[i], nxt[i] = 0, _UNFETCHED
                    continue
                if nxt[i] is _UNFETCHED:
                    nxt[i] = reader.take(i)
                if isinstance(nxt[i], BaseException):
                    raise nxt[i]  # every row of this file before the bad one was yielded
                cur[i], pos[i], nxt[i] = nxt[i], 0, _UNFETCHED
                if cur[i] is _END:
                    active.remove(i)

    def _ordered(self, segs: list[tuple[RecordType, np.ndarray, np.ndarray]]) -> Iterator[Batch]:
        """Segments (file order, each sorted by ts_recv) -> batches in key order."""
        if len(segs) == 1:  # one file in this round: no merge, usually not even a copy
            rtype, recs, ts = segs[0]
            if (ts[1:] == ts[:-1]).any():
                perm = _order_ties(np.arange(len(ts)), ts, [recs], np.array([0, len(ts)]))
                if perm is not None:
                    recs = recs.take(perm)
            yield from self._split(rtype, recs)
            return
        starts = np.zeros(len(segs) + 1, dtype=np.int64)
        np.cumsum([len(s[1]) for s in segs], out=starts[1:])
        ts = np.concatenate([s[2] for s in segs])
        perm = np.empty(len(ts), dtype=np.int64)
        if _merge_runs(ts, starts, perm):  # equal ts_recv somewhere: order those by key
            fixed = _order_ties(perm, ts[perm], [s[1] for s in segs], starts)
            perm = perm if fixed is None else fixed
        rtypes = [s[0] for s in segs]
        if len(set(rtypes)) == 1:
            dtype = segs[0][1].dtype
            # void view: concatenate/take move whole records, ~5x faster than field-wise
            cat = np.concatenate([s[1].view(_VOID64[dtype]) for s in segs])
            yield from self._split(rtypes[0], cat.take(perm).view(dtype))
            return
        # Mixed types: per-type concatenation, then runs of one type in merged order.
        by_type: dict[RecordType, list[np.ndarray]] = {}
        local = []
        for rtype, recs, _ in segs:
            parts = by_type.setdefault(rtype, [])
            start = sum(len(p) for p in parts)
            parts.append(recs)
            local.append(np.arange(start, start + len(recs)))
        codes = np.concatenate([np.full(len(s[1]), int(s[0]), np.uint8) for s in segs])
        local_idx = np.concatenate(local)
        cats = {
            rt: np.concatenate([p.view(_VOID64[p.dtype]) for p in parts])
            for rt, parts in by_type.items()
        }
        codes_sorted = codes[perm]
        # One gather per type into merged order; the runs are then views of those, so
        # finely interleaved types (quote, trade, quote...) cost ~1 µs per run.
        ordered = {
            int(rt): cats[rt].take(local_idx[perm[codes_sorted == int(rt)]]).view(DTYPES[rt])
            for rt in by_type
        }
        taken = dict.fromkeys(ordered, 0)
        run_starts = np.flatnonzero(codes_sorted[1:] != codes_sorted[:-1]) + 1
        bounds = [0, *run_starts.tolist(), len(perm)]
        step = self.batch_rows
        make = tuple.__new__  # Batch(...) without the NamedTuple's Python-level __new__
        for code, a, b in zip(codes_sorted[bounds[:-1]].tolist(), bounds, bounds[1:], strict=False):
            o = taken[code]
            e = taken[code] = o + b - a
            if e - o <= step:
                yield make(Batch, (_RTYPES[code], ordered[code][o:e]))
            else:
                yield from self._split(_RTYPES[code], ordered[code][o:e])

    def _split(self, rtype: RecordType, recs: np.ndarray) -> Iterator[Batch]:
        step = self.batch_rows
        for a in range(0, len(recs), step):
            yield Batch(rtype, recs[a : a + step])


@numba.njit(nogil=True, cache=True)
def _merge_runs(ts: np.ndarray, starts: np.ndarray, perm: np.ndarray) -> bool:
    """K-way merge of the sorted runs `ts[starts[r]:starts[r + 1]]`, equal values in run
    order (so: stable): `perm[o]` = input index of output `o`. Returns whether two
    outputs share a value. O(n * K): K is the number of files, small. ~70M/s here for
    K = 4, against ~30M/s for a stable argsort, and it runs without the GIL."""
    k = len(starts) - 1
    heads = starts[:-1].copy()
    ends = starts[1:]
    tie = False
    last = 0
    for o in range(len(ts)):
        best = -1
        best_ts = 0
        for r in range(k):
            h = heads[r]
            if h < ends[r] and (best < 0 or ts[h] < best_ts):
                best = r
                best_ts = ts[h]
        if o > 0 and best_ts == last:
            tie = True
        last = best_ts
        perm[o] = heads[best]
        heads[best] += 1
    return tie


def _order_ties(
    perm: np.ndarray, ts_sorted: np.ndarray, parts: list[np.ndarray], starts: np.ndarray
) -> np.ndarray | None:
    """`perm` (already in ts order, stable) with each run of equal ts reordered by
    (source_id, seq), stably; None if those runs already are in order. Works on the
    tied records only: ties are few in real recordings."""
    eq = np.flatnonzero(ts_sorted[1:] == ts_sorted[:-1])
    if len(eq) == 0:
        return None
    members = np.union1d(eq, eq + 1)  # output positions inside a tie run, ascending
    idx = perm[members]
    part = np.searchsorted(starts, idx, side="right") - 1
    src = np.empty(len(idx), np.uint16)
    seq = np.empty(len(idx), np.uint64)
    for p, recs in enumerate(parts):
        mine = part == p
        local = idx[mine] - starts[p]
        src[mine] = recs["source_id"][local]
        seq[mine] = recs["seq"][local]
    order = np.lexsort((seq, src, ts_sorted[members]))  # stable: keeps the merge order
    if (order == np.arange(len(order))).all():
        return None
    out = perm.copy()
    out[members] = idx[order]
    return out


def _join(chunk: Chunk, pos: int, nxt: Chunk) -> Chunk:
    void = _VOID64[chunk.records.dtype]
    recs = np.concatenate([chunk.records[pos:].view(void), nxt.records.view(void)])
    return Chunk(
        recs.view(chunk.records.dtype), np.concatenate([chunk.ts[pos:], nxt.ts]), chunk.row0 + pos
    )


def replay(
    paths: str | Path | Iterable[str | Path],
    *,
    batch_rows: int = 65536,
    readahead: int = 4,
) -> Iterator[Batch]:
    """Stream the records of `paths` (Parquet event files or directories of them) as
    batches in `(ts_recv, source_id, seq)` order, stable; see the module docstring.

    Schema problems raise here; data problems raise when the iteration reaches them."""
    return iter(Replay(paths, batch_rows=batch_rows, readahead=readahead))
