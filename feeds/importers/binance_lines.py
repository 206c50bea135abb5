"""A Binance capture's lines scanned into columns on two threads, while it unpacks.

The text comes in pieces (`compressed.unpacked`: a gzip capture ~1.7 MB at a time, a plain
one whole). Each piece's whole lines are scanned on a two-thread pool while the main thread
unpacks the next piece: the compiled scan and the inflater both release the GIL, so
unpacking and scanning overlap instead of running one after the other. A large piece is split
at a line break so both threads scan it. The parts are joined so the result is the one a
single scan of the whole text gives: positions and level indices made absolute.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from redline.feeds.importers import binance_scan as sc
from redline.feeds.importers.compressed import CutShort
from redline.feeds.importers.line_breaks import count_lines

PARALLEL_BYTES = 4 << 20  # below this one thread scans faster than two start

# One scanned part: rows, level columns, level count, error code, error line.
Part = tuple[np.ndarray, tuple[np.ndarray, ...], int, int, int]


def scan_part(buf: np.ndarray, offset: int) -> Part:
    """Scan `buf` (whole lines), which starts at byte `offset` of the text."""
    rows = np.zeros((count_lines(buf), sc.N_COLS), np.int64)
    cap = len(buf) // 12 + 16  # a level `["1","0"],` takes >= 10 bytes
    lv = (*(np.empty(cap, np.int64) for _ in range(4)), np.empty(cap, np.int8))
    n, nlv, err, err_line = sc.scan(buf, rows, *lv)
    rows = rows[: n + 1 if err else n]
    rows[:, sc.C_POS] += offset
    return rows, lv, nlv, err, err_line


def picked(rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """rows[mask], by `take` on the indices: faster than a boolean index on these wide
    int64 rows (bench/bench_books.py times the import they serve)."""
    return rows.take(np.flatnonzero(mask), axis=0)


class Text:
    """The scanned text as its line-aligned segments (bytes, lo, hi), in order: never joined
    into one copy of the whole, which would be as many bytes again to write and fault in,
    for the few lines (symbols, an error) read back from it."""

    def __init__(self, segments: list[tuple[bytes, int, int]]) -> None:
        self.segments = segments
        self.starts = [0]  # offset of each segment in the text, then its length
        for _, lo, hi in segments:
            self.starts.append(self.starts[-1] + hi - lo)

    def __len__(self) -> int:
        return self.starts[-1]

    def _at(self, pos: int) -> tuple[int, int]:
        """(segment, index in its bytes) of text position `pos`."""
        i = bisect_right(self.starts, pos) - 1
        return i, self.segments[i][1] + pos - self.starts[i]

    def line(self, pos: int) -> bytes:
        """The line that starts at `pos`, without its line break."""
        i, at = self._at(pos)
        obj, _, hi = self.segments[i]
        end = obj.find(b"\n", at, hi)
        return obj[at : end if end >= 0 else hi]

    def line_number(self, pos: int) -> int:
        """1 + the line breaks before `pos` (blank lines counted)."""
        i, at = self._at(pos)
        obj, lo, _ = self.segments[i]
        before = sum(o.count(b"\n", a, b) for o, a, b in self.segments[:i])
        return before + obj.count(b"\n", lo, at) + 1


def scan_text(data: bytes) -> tuple[Text, list[Part]]:
    """A text in memory, scanned (in two halves on two threads when it is large)."""
    if len(data) < PARALLEL_BYTES:
        return Text([(data, 0, len(data))]), [scan_part(np.frombuffer(data, np.uint8), 0)]
    return scan_pieces([data])


def scan_pieces(pieces: Iterable[bytes]) -> tuple[Text, list[Part]]:
    """The text and its parts, in order; a CutShort from `pieces` is raised again with every
    byte that came before it. A line cut in two by a piece's end becomes a segment of its
    own; the rest of each piece is scanned where it lies, never copied."""
    segments: list[tuple[bytes, int, int]] = []
    jobs: list[Future] = []
    tail = b""  # the start of a line cut in two by the end of a piece

    with ThreadPoolExecutor(2) as pool:

        def add(obj: bytes, lo: int, hi: int) -> None:
            offset = sum(b - a for _, a, b in segments)
            segments.append((obj, lo, hi))
            buf = np.frombuffer(obj, np.uint8)
            # large: split at a line break, so that both threads scan it
            mid = obj.find(b"\n", (lo + hi) // 2, hi) + 1 if hi - lo >= PARALLEL_BYTES else hi
            for a, b in ((lo, mid), (mid, hi)):
                if b > a:
                    jobs.append(pool.submit(scan_part, buf[a:b], offset + a - lo))

        try:
            for piece in pieces:
                last = piece.rfind(b"\n") + 1
                if not last:
                    tail += piece
                    continue
                first = 0
                if tail:
                    first = piece.find(b"\n") + 1
                    add(tail + piece[:first], 0, len(tail) + first)
                if last > first:
                    add(piece, first, last)
                tail = piece[last:]
        except CutShort as exc:
            done = [memoryview(o)[lo:hi] for o, lo, hi in segments]
            raise CutShort(str(exc), b"".join([*done, tail])) from None
        if tail:  # the last line, without a line break
            add(tail, 0, len(tail))
        parts = [j.result() for j in jobs]
    return Text(segments), parts or [scan_part(np.zeros(0, np.uint8), 0)]


def joined(parts: list[Part]) -> tuple[np.ndarray, tuple[np.ndarray, ...], int]:
    """One scan's rows, level columns and level count from error-free parts in order."""
    if len(parts) == 1:
        rows, lv, nlv, _, _ = parts[0]
        return rows, tuple(a[:nlv] for a in lv), nlv
    base = np.cumsum([0] + [p[2] for p in parts[:-1]])
    for (rows, _, _, _, _), b in zip(parts, base.tolist(), strict=True):
        if b:
            books = (rows[:, sc.C_KIND] == sc.DEPTH) | (rows[:, sc.C_KIND] == sc.SNAPSHOT)
            rows[books, sc.C_PX] += b
            rows[books, sc.C_SZ] += b
    lv = tuple(np.concatenate([p[1][k][: p[2]] for p in parts]) for k in range(5))
    return np.concatenate([p[0] for p in parts]), lv, int(base[-1] + parts[-1][2])
