"""`redline inspect PATH... [--json PATH]`: what a recording holds.

Streams the files through `redline.feeds.replay.reader` (bounded memory, any length) and
reports the schema, counts per record type and per instrument, the time span (as UTC
dates, overall and per file), sequence gaps and out-of-order receipt per source, and
`ts_recv - ts_event` percentiles. An instrument table (`*_instruments.parquet`, written
beside every recording) is read as one and listed, so `inspect replay_data/*.parquet`
works. `Inspection` is the accumulator, reusable on any stream of batches.

JSON keys (stable; counts are ints, times int ns since the epoch unless named _s):

    files        [{path, record_type, rows, row_groups, bytes, columns: {name: arrow type},
                   ts_recv_first, ts_recv_last}]: first and last null for an empty file
    instruments  [{path, instruments: [{instrument_id, symbol, tick_size, price_precision,
                   lot_size, multiplier}]}]: instrument tables (decimals as strings)
    skipped      [path]: Parquet files in a directory that are neither
    events       {total, by_record_type: {QUOTE: n, ...}, by_instrument: {"<id>": n}}
    span         {ts_recv_first, ts_recv_last, ts_event_min, ts_event_max, seconds}
                 (seconds: ts_recv_last - ts_recv_first; all null when there are no events)
    sources      {"<source_id>": {sequence, events, seq_first, seq_last, gaps, missing,
                  late, duplicates, ts_event_back}}: `missing` null where the semantics
                  cannot count it
    gaps         {total, missing}: summed over sources
    out_of_order {seq, ts_event}: summed over sources
    flags        {SNAPSHOT, BAD_TS_RECV, LAST, GAP_BEFORE}: records with each bit set
    latency_ns   {count, excluded, no_ts_event, negative, min, p50, p99, p999, max, clamped,
                  saturated, median, clock_skew}: median signed, negatives included;
                  clock_skew the median when it is negative or beyond SKEW_BOUND_NS, else null

Each source is checked by what its `seq` means (`sequence`, from the `redline.sequence`
metadata its importer wrote: `feeds/importers/semantics.py`; "contiguous" when a file has
none). Contiguous (per source, or per instrument of the source), in receive (`ts_recv`)
order: `late` counts records whose `seq` is below one already seen (received out of
sequence order); a late record fills a hole or, if its number was already seen, counts as
a `duplicate`. `gaps` are the ranges of sequence numbers between the first and the last
still missing at the end, `missing` their total length. "per event" (ids that jump, shared
by one event's records): `gaps` are the records the importer flagged GAP_BEFORE by the
venue's own rule, `late` the records whose id goes back. "shared" (one sequence across
instruments): only `late` is counted. "none": nothing is. `ts_event_back` counts records whose `ts_event` is below one
received earlier from the same source (events received out of event-time order).
Latency excludes records flagged BAD_TS_RECV or SNAPSHOT (`excluded`) and records whose
source gives no event time (ts_event 0: `no_ts_event`); `negative`
counts records received before their event time (the recorder's clock is behind the
source's; left out of the percentiles, `min` shows by how much, and the text report says
so). Percentiles come from the HDR histogram of `redline.pipeline.observe.latency`
(3 significant digits, 1 ns .. 60 s): `clamped` counts latencies above 60 s, recorded as
60 s, and `saturated` lists the percentile keys that sit at that ceiling (their figure is a
floor, printed as ">= 60 s"); `min` and `max` are exact.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from redline.feeds.events import HEADER_FIELDS, Flag, RecordType
from redline.feeds.importers import semantics as sem
from redline.feeds.instruments import REQUIRED_COLUMNS, InstrumentTable
from redline.feeds.replay.reader import Replay
from redline.pipeline.cli.inspect_sequence import SourceSequence, per_source
from redline.pipeline.cli.inspect_text import SKEW_BOUND_NS, print_report
from redline.pipeline.cli.json_out import add_json_arg, write_json
from redline.pipeline.observe.latency import HIGHEST_NS, StageHistogram

_EXCLUDED = int(Flag.BAD_TS_RECV) | int(Flag.SNAPSHOT)


_HEADER = np.dtype(HEADER_FIELDS)  # 32 bytes at offset 0 of every record type
_CHUNK = 65536  # headers gathered before one vectorised pass


class Inspection:
    """Accumulates the figures of one replay, batch by batch (memory: per source and
    instrument, not per event). Feed it batches in replay order.

    Mixed-type replays come as runs of a few records; everything but the per-type
    count reads only the common header, so headers are gathered into one buffer
    and analysed 64k at a time: a run costs ~2 µs, not ~100."""

    def __init__(self, sequence: dict[int, str] | None = None) -> None:
        self.sequence = sequence or {}  # source_id -> semantics; absent: contiguous
        self._per_instrument = np.array(
            [s for s, v in self.sequence.items() if v == sem.PER_INSTRUMENT], np.int64
        )
        self._buf = np.empty(_CHUNK, _HEADER)
        self._buf_bytes = self._buf.view(np.uint8).reshape(_CHUNK, _HEADER.itemsize)
        self._n = 0
        self.by_type: Counter[str] = Counter()
        self.by_instrument: Counter[int] = Counter()
        self.sources: dict[tuple[int, int], SourceSequence] = {}  # (source, instrument or -1)
        self.flags: Counter[str] = Counter()
        self.ts_recv_first: int | None = None
        self.ts_recv_last: int | None = None
        self.ts_event_min: int | None = None
        self.ts_event_max: int | None = None
        self.latency = StageHistogram()
        self.latency_back = StageHistogram()  # -(ts_recv - ts_event) of the negative ones
        self.lat_min: int | None = None  # exact, negative ones included
        self.lat_excluded = 0
        self.lat_no_ts_event = 0

    def add(self, rtype: RecordType, recs: np.ndarray) -> None:
        n = len(recs)
        if n == 0:
            return
        self.by_type[rtype.name] += n
        if self._n + n > _CHUNK:
            self._flush()
        recs = np.ascontiguousarray(recs)
        header = recs.view(np.uint8).reshape(n, recs.dtype.itemsize)[:, : _HEADER.itemsize]
        if n >= _CHUNK:
            self._analyse(np.ascontiguousarray(header).view(_HEADER).reshape(n))
        else:
            self._buf_bytes[self._n : self._n + n] = header
            self._n += n

    def _flush(self) -> None:
        if self._n:
            self._analyse(self._buf[: self._n])
            self._n = 0

    def _analyse(self, recs: np.ndarray) -> None:
        """One vectorised pass over headers, in replay order."""
        ids, counts = np.unique(recs["instrument_id"], return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist(), strict=True):
            self.by_instrument[i] += c
        ts_recv, ts_event = recs["ts_recv"], recs["ts_event"]
        if self.ts_recv_first is None:
            self.ts_recv_first = int(ts_recv[0])
        self.ts_recv_last = int(ts_recv[-1])
        known = ts_event[ts_event != 0]  # 0: the source gives no event time
        if len(known):
            lo, hi = int(known.min()), int(known.max())
            self.ts_event_min = lo if self.ts_event_min is None else min(self.ts_event_min, lo)
            self.ts_event_max = hi if self.ts_event_max is None else max(self.ts_event_max, hi)
        flags = recs["flags"]
        for f in Flag:
            self.flags[f.name] += int(np.count_nonzero(flags & int(f)))
        self._add_latency(ts_recv, ts_event, flags)
        # per source (per instrument too where its numbers count per instrument), keeping
        # receive order inside each (stable sort)
        src = recs["source_id"].astype(np.int64)
        inst = np.where(np.isin(src, self._per_instrument), recs["instrument_id"], -1)
        key = (src << 33) + inst + 1
        order = np.argsort(key, kind="stable")
        key_sorted = key[order]
        cuts = np.flatnonzero(key_sorted[1:] != key_sorted[:-1]) + 1
        for part in np.split(order, cuts):
            s, i = int(src[part[0]]), int(inst[part[0]])
            st = self.sources.get((s, i))
            if st is None:
                st = self.sources[(s, i)] = SourceSequence(self.sequence.get(s, sem.CONTIGUOUS))
            st.add(recs["seq"][part], ts_event[part], flags[part])

    def _add_latency(self, ts_recv: np.ndarray, ts_event: np.ndarray, flags: np.ndarray) -> None:
        excluded = (flags & _EXCLUDED) != 0
        unknown = (ts_event == 0) & ~excluded
        self.lat_excluded += int(excluded.sum())
        self.lat_no_ts_event += int(unknown.sum())
        lat = (ts_recv - ts_event)[~excluded & ~unknown]
        if len(lat):
            lo = int(lat.min())
            self.lat_min = lo if self.lat_min is None else min(self.lat_min, lo)
            self.latency.record(lat)  # vectorised HDR; negatives counted, not recorded
            if lo < 0:
                self.latency_back.record(-lat[lat < 0])  # for the signed median

    def signed_median(self) -> int | None:
        """Median of ts_recv - ts_event, negative ones included (None without any)."""
        pos, neg = self.latency.count, self.latency_back.count
        n = pos + neg
        if n == 0:
            return None
        k = (n + 1) // 2  # rank of the median, 1-based, ascending
        if k <= neg:  # among the negatives: the k-th most negative
            return -int(self.latency_back.hdr.get_value_at_percentile(100 * (neg - k + 1) / neg))
        return int(self.latency.hdr.get_value_at_percentile(100 * (k - neg) / pos))

    def report(self) -> dict[str, Any]:
        self._flush()
        span_s = None
        if self.ts_recv_first is not None:
            span_s = (self.ts_recv_last - self.ts_recv_first) / 1e9
        sources = per_source(self.sources)
        pct = self.latency.percentiles()
        median = self.signed_median()
        skewed = median is not None and (median < 0 or median > SKEW_BOUND_NS)
        return {
            "events": {
                "total": sum(self.by_type.values()),
                "by_record_type": {
                    t.name: self.by_type[t.name] for t in RecordType if self.by_type[t.name]
                },
                "by_instrument": {str(i): n for i, n in sorted(self.by_instrument.items())},
            },
            "span": {
                "ts_recv_first": self.ts_recv_first,
                "ts_recv_last": self.ts_recv_last,
                "ts_event_min": self.ts_event_min,
                "ts_event_max": self.ts_event_max,
                "seconds": span_s,
            },
            "sources": sources,
            "gaps": {
                "total": sum(s["gaps"] for s in sources.values()),
                "missing": sum(s["missing"] or 0 for s in sources.values()),
            },
            "out_of_order": {
                "seq": sum(s["late"] for s in sources.values()),
                "ts_event": sum(s["ts_event_back"] for s in sources.values()),
            },
            "flags": {f.name: self.flags[f.name] for f in Flag},
            "latency_ns": {
                "count": self.latency.count,
                "excluded": self.lat_excluded,
                "no_ts_event": self.lat_no_ts_event,
                "negative": self.latency.negative,
                "min": self.lat_min,
                **pct,
                "clamped": self.latency.clamped,
                # a percentile in the clamped bucket is only a floor: name it, never a figure
                "saturated": [
                    k
                    for k in ("p50", "p99", "p999")
                    if self.latency.clamped and pct[k] is not None and pct[k] >= HIGHEST_NS
                ],
                "median": median,
                "clock_skew": median if skewed else None,
            },
        }


_TABLE_COLUMNS = REQUIRED_COLUMNS


def _is_instrument_table(path: Path) -> bool:
    """A Parquet file with the instrument table's columns (unreadable ones: not; the event
    reader then names what is wrong with them)."""
    try:
        return set(pq.read_schema(path).names) >= _TABLE_COLUMNS
    except (OSError, pa.ArrowException):
        return False


def _instrument_table(path: Path) -> dict[str, Any]:
    rows = [
        {
            "instrument_id": i.instrument_id,
            "symbol": i.symbol,
            "tick_size": str(i.tick_size),
            "price_precision": i.price_precision,
            "lot_size": str(i.lot_size),
            "multiplier": str(i.multiplier),
            "source": i.source,
        }
        for i in InstrumentTable.read(path)
    ]
    return {"path": str(path), "instruments": rows}


def _recv_span(path: Path) -> tuple[int | None, int | None]:
    """First and last ts_recv of one file, from its Parquet statistics (no data read) when
    the writer kept them, else from the ts_recv column alone."""
    meta = pq.ParquetFile(path).metadata
    lo: int | None = None
    hi: int | None = None
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        col = next(group.column(c) for c in range(group.num_columns)
                   if group.column(c).path_in_schema == "ts_recv")  # fmt: skip
        st = col.statistics
        if st is None or not st.has_min_max:
            ts = pq.read_table(path, columns=["ts_recv"]).column("ts_recv").to_numpy()
            return (int(ts.min()), int(ts.max())) if ts.size else (None, None)
        lo = st.min if lo is None else min(lo, st.min)
        hi = st.max if hi is None else max(hi, st.max)
    return lo, hi


def inspect_paths(paths: list[str | Path], batch_rows: int = 65536) -> dict[str, Any]:
    """The inspect report of `paths` (files or directories), as `--json` writes it."""
    tables = [Path(p) for p in paths if Path(p).is_file() and _is_instrument_table(Path(p))]
    rep = Replay([p for p in paths if Path(p) not in tables], batch_rows=batch_rows)
    tables += [p for p in rep.skipped if _is_instrument_table(p)]
    sequence: dict[int, str] = {}
    for f in rep.files:
        for source, s in sem.decode(f.schema.metadata, str(f.path)).items():
            sequence.setdefault(source, s)
    ins = Inspection(sequence)
    for rtype, recs in rep:
        ins.add(rtype, recs)
    files = []
    for f in rep.files:
        first, last = _recv_span(f.path)
        files.append(
            {
                "path": str(f.path),
                "record_type": f.rtype.name,
                "rows": f.num_rows,
                "row_groups": f.num_row_groups,
                "bytes": f.path.stat().st_size,
                "columns": {fld.name: str(fld.type) for fld in f.schema},
                "ts_recv_first": first,
                "ts_recv_last": last,
            }
        )
    return {
        "files": files,
        "instruments": [_instrument_table(p) for p in tables],
        "skipped": [str(p) for p in rep.skipped if p not in tables],
        **ins.report(),
    }


def register(sub) -> None:
    p = sub.add_parser("inspect", help="schema, counts, span, gaps and latency of recordings")
    p.add_argument("paths", nargs="+", metavar="PATH", help="Parquet event files or directories")
    p.add_argument(
        "--batch-rows", type=int, default=65536, help="rows read at a time (default 65536)"
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    report = inspect_paths(args.paths, batch_rows=args.batch_rows)
    print_report(report)
    write_json(args.json, report)
    return 0
