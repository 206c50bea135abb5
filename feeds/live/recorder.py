"""Recorder: a live feed to rotating zstd Parquet segments, crash-safe.

Parquet is only readable once its footer is written, so the open segment is
also kept as a journal: the wire frames, appended in arrival order and
written to the OS every `flush_interval_s` (100 ms). The OS keeps what was
written when the process dies, so after `kill -9`:

- every closed segment (`seg-000001.quote.parquet`, ...) is whole: it is
  written to a temporary name and renamed into place, and its journal is
  removed only after that;
- the open segment's journal holds everything up to the last flush, and a
  torn last frame is cut off. `recover()` (run by every new Recorder) turns
  leftover journals into segments.

A journal damaged mid-file (a bad frame header, stray bytes: not something a
crash leaves) is read past: the read resynchronises at the next good frame,
so its segment gets every readable row, and the journal is kept aside as
`seg-000003.journal.damaged` with the byte ranges skipped reported in
`Recorder.recovery_stats()`. A clean or merely torn journal is removed once
its segment is written.

`fsync=True` also survives a power cut, at the cost of a disk sync per flush.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from redline.feeds.clock import Clock, LiveClock
from redline.feeds.event_schema import (
    from_arrow,
    parquet_layout,
    record_type_from_schema,
    to_arrow,
)
from redline.feeds.events import DTYPES, Batch, RecordType
from redline.feeds.wire.frames import END_OF_STREAM, Decoder, encode
from redline.feeds.wire.stream_scan import scan_stream

_SEGMENT = re.compile(r"seg-(\d{6})\.(?:journal|(\w+)\.parquet)$")


def _segment_path(out: Path, seg: int, rtype: RecordType) -> Path:
    return out / f"seg-{seg:06d}.{rtype.name.lower()}.parquet"


def _journal_path(out: Path, seg: int) -> Path:
    return out / f"seg-{seg:06d}.journal"


def _write_segment(
    out: Path, seg: int, parts: dict[RecordType, list[np.ndarray]], fsync: bool
) -> int:
    """Write one Parquet file per record type, each atomically; returns rows."""
    rows = 0
    for rtype, arrays in parts.items():
        recs = np.concatenate(arrays)
        final = _segment_path(out, seg, rtype)
        tmp = final.with_suffix(".tmp")
        table = pa.Table.from_batches([to_arrow(recs)])
        pq.write_table(table, tmp, compression="zstd", **parquet_layout(table.schema))
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final)
        rows += len(recs)
    return rows


@dataclass(frozen=True)
class JournalRead:
    """A journal's readable batches and what had to be passed over to get them."""

    batches: list[Batch]
    torn: int  # trailing bytes of a last frame cut short by a crash
    skipped: list[tuple[int, int]]  # [start, end) byte ranges of mid-file damage
    skipped_by_reason: dict[str, int]  # the skipped ranges judged as frames (Malformed)

    @property
    def rows(self) -> int:
        return sum(len(b.records) for b in self.batches)

    @property
    def skipped_bytes(self) -> int:
        return sum(b - a for a, b in self.skipped)

    @property
    def damaged(self) -> bool:
        """Damage a crash cannot explain: the journal is worth keeping to look at."""
        return bool(self.skipped)


def scan_journal(path: str | Path) -> JournalRead:
    """Every readable batch in a journal, reading past damage (see `scan_stream`)."""
    scan = scan_stream(Path(path).read_bytes())
    dec = Decoder()
    batches = [
        b for f in scan.frames if (b := dec.decode(f)) is not None and b is not END_OF_STREAM
    ]
    return JournalRead(batches, scan.torn, scan.skipped, scan.skipped_by_reason)


def read_journal(path: str | Path) -> tuple[list[Batch], int]:
    """The batches in a journal and the number of torn trailing bytes cut off."""
    read = scan_journal(path)
    return read.batches, read.torn


@dataclass(frozen=True)
class Recovered:
    """One leftover journal turned into its segment."""

    journal: Path  # where the crash left it
    read: JournalRead
    kept_as: Path | None  # where a damaged journal was set aside; None: removed

    def stats(self) -> dict[str, object]:
        return {
            "journal": str(self.journal),
            "kept_as": None if self.kept_as is None else str(self.kept_as),
            "rows": self.read.rows,
            "torn_bytes": self.read.torn,
            "skipped_bytes": self.read.skipped_bytes,
            "skipped": [list(r) for r in self.read.skipped],
            "skipped_frames": sum(self.read.skipped_by_reason.values()),
            "skipped_by_reason": self.read.skipped_by_reason,
        }


def _set_aside(journal: Path) -> Path:
    """Rename a damaged journal to a free `.damaged` name: never over older evidence."""
    kept = journal.with_name(journal.name + ".damaged")
    n = 0
    while kept.exists():
        n += 1
        kept = journal.with_name(f"{journal.name}.damaged.{n}")
    os.replace(journal, kept)
    return kept


def _recover_one(out: Path, journal: Path, fsync: bool) -> Recovered:
    """Write a journal's segment, then remove the journal or, if damaged, keep it aside.

    The segment is in place first, so a crash here only means recovering it again.
    """
    seg = int(_SEGMENT.search(journal.name).group(1))
    read = scan_journal(journal)
    parts: dict[RecordType, list[np.ndarray]] = defaultdict(list)
    for b in read.batches:
        parts[b.rtype].append(b.records)
    _write_segment(out, seg, parts, fsync)
    if read.damaged:
        return Recovered(journal, read, _set_aside(journal))
    journal.unlink()
    return Recovered(journal, read, None)


def recover_journals(out: str | Path, fsync: bool = False) -> list[Recovered]:
    """Turn every journal left in `out` by a crash into its segment; what each gave."""
    out = Path(out)
    return [_recover_one(out, j, fsync) for j in sorted(out.glob("seg-*.journal"))]


def recover(out: str | Path, fsync: bool = False) -> int:
    """Turn every journal left in `out` by a crash into its segment; returns rows."""
    return sum(r.read.rows for r in recover_journals(out, fsync))


def segments(out: str | Path) -> list[Path]:
    """The closed segment files in `out`, in segment order."""
    return sorted(p for p in Path(out).glob("seg-*.parquet") if _SEGMENT.search(p.name))


def read_recording(out: str | Path) -> dict[RecordType, np.ndarray]:
    """All closed segments of a recording, concatenated per record type in arrival order."""
    parts: dict[RecordType, list[np.ndarray]] = defaultdict(list)
    for path in segments(out):
        table = pq.read_table(path)
        rtype = record_type_from_schema(table.schema, where=str(path))
        parts[rtype].append(from_arrow(table, rtype, where=str(path)))
    return {r: np.concatenate(a) if a else np.empty(0, DTYPES[r]) for r, a in parts.items()}


class Recorder:
    """Writes batches to `out` as segments of `segment_rows` rows (a batch is
    split where a segment fills) or `segment_seconds`, whichever comes first.
    Call `tick()` often (every receive timeout): it flushes the journal and
    rotates on time."""

    def __init__(
        self,
        out: str | Path,
        *,
        segment_rows: int = 1_000_000,
        segment_seconds: float = 60.0,
        flush_interval_s: float = 0.1,
        fsync: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if segment_rows < 1 or segment_seconds <= 0 or flush_interval_s <= 0:
            raise ValueError(
                "Recorder: segment_rows must be >= 1 and segment_seconds, flush_interval_s > 0; "
                f"got {segment_rows}, {segment_seconds}, {flush_interval_s}"
            )
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.segment_rows = segment_rows
        self.segment_ns = int(segment_seconds * 1e9)
        self.flush_ns = int(flush_interval_s * 1e9)
        self.fsync = fsync
        self.clock = clock or LiveClock()
        self.recovered = recover_journals(self.out, fsync)  # see recovery_stats()
        self.recovered_rows = sum(r.read.rows for r in self.recovered)
        done = [int(m.group(1)) for p in self.out.iterdir() if (m := _SEGMENT.search(p.name))]
        self.segment = max(done, default=0)  # the open one is segment + 1 once data comes
        self.rows = 0  # all rows written
        self.segments_closed = 0
        self._fd: int | None = None
        self._parts: dict[RecordType, list[np.ndarray]] = defaultdict(list)
        self._open_rows = 0
        self._opened_ns = 0
        self._buffer: list[bytes] = []
        self._flushed_ns = self.clock.monotonic_ns()

    def write(self, batch: Batch) -> None:
        """Append a batch to the open segment (in memory until the next flush);
        a segment that fills is closed at once and the rest goes to the next."""
        rtype, recs = batch
        while len(recs):
            if self._fd is None:
                self.segment += 1
                self._fd = os.open(
                    _journal_path(self.out, self.segment),
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                    0o644,
                )
                self._opened_ns = self.clock.monotonic_ns()
            room = self.segment_rows - self._open_rows
            head, recs = recs[:room], recs[room:]
            self._buffer.append(encode(head, rtype))
            self._parts[rtype].append(head)
            self._open_rows += len(head)
            self.rows += len(head)
            if self._open_rows >= self.segment_rows:
                self.rotate()

    def tick(self) -> None:
        """Flush the journal when the interval has passed; rotate when the segment is full."""
        now = self.clock.monotonic_ns()
        if now - self._flushed_ns >= self.flush_ns:
            self.flush()
        if self._fd is not None and now - self._opened_ns >= self.segment_ns:
            self.rotate()

    def flush(self) -> None:
        """Hand everything written so far to the OS (and the disk, with fsync)."""
        self._flushed_ns = self.clock.monotonic_ns()
        if self._fd is None or not self._buffer:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        if self.fsync:
            os.fsync(self._fd)

    def rotate(self) -> None:
        """Close the open segment: Parquet files in place, then the journal removed."""
        if self._fd is None:
            return
        self.flush()
        _write_segment(self.out, self.segment, self._parts, self.fsync)
        os.close(self._fd)
        self._fd = None
        _journal_path(self.out, self.segment).unlink()
        self._parts = defaultdict(list)
        self._open_rows = 0
        self.segments_closed += 1

    def recovery_stats(self) -> dict[str, object]:
        """What this recorder's start recovered from a crashed run; `damaged` lists the
        journals that were read past damage and kept aside, with the byte ranges skipped."""
        return {
            "rows": self.recovered_rows,
            "journals": len(self.recovered),
            "torn_bytes": sum(r.read.torn for r in self.recovered),
            "skipped_bytes": sum(r.read.skipped_bytes for r in self.recovered),
            "damaged": [r.stats() for r in self.recovered if r.kept_as is not None],
        }

    def close(self) -> None:
        """Close the open segment cleanly."""
        self.rotate()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
