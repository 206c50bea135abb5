"""Reading a byte stream of feed frames that may be damaged (a recorder's journal after a crash).

A torn tail (the last frame cut short) is cut off and counted. A frame that fails the checks in
the middle does not end the read: the scan moves forward to the next place where a whole frame
that passes `frames.check_frame` starts, keeps everything after it, and records each skipped
byte range and the reason it was skipped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from redline.feeds.wire.frames import (
    HEADER,
    HEADER_SIZE,
    IS_DATA,
    IS_END,
    MAGIC,
    N_COUNTS,
    RECORD_SIZES,
    WIRE_VERSION,
    FrameKind,
    Malformed,
    check_frame,
)

_DATA = int(FrameKind.DATA)


@dataclass
class StreamScan:
    """What `scan_stream` found in a byte stream of back-to-back frames."""

    frames: list[memoryview]  # every whole frame that passes check_frame, in order
    skipped: list[tuple[int, int]]  # [start, end) byte ranges passed over to resynchronise
    skipped_by_reason: dict[str, int]  # the skipped ranges judged as frames, per Malformed
    torn: int  # trailing bytes of a last frame cut short (a crash mid-write)

    @property
    def skipped_bytes(self) -> int:
        return sum(b - a for a, b in self.skipped)

    @property
    def skipped_frames(self) -> int:
        return sum(self.skipped_by_reason.values())


def scan_stream(buf) -> StreamScan:
    """Cut a byte stream of back-to-back frames (a journal) into frames, past damage.

    A bad frame in the middle does not end the read: the scan resynchronises at the
    next offset where a whole frame passes `check_frame`, so every good frame after
    the damage is kept and the bytes passed over are reported. Only a last frame cut
    short (what a crash leaves) is `torn`; any other unreadable tail is skipped.
    """
    return _StreamWalk(buf).walk()


class _StreamWalk:
    """One pass of `scan_stream`: the offsets it has reached and what it found."""

    def __init__(self, buf) -> None:
        self.data = buf if isinstance(buf, bytes) else bytes(buf)  # bytes.find: fast resync
        self.view = memoryview(self.data)
        self.arr = np.frombuffer(self.data, np.uint8)
        self.n = len(self.data)
        self.probe = np.zeros(N_COUNTS, np.int64)  # check_frame must count; probes go here
        self.damage = np.zeros(N_COUNTS, np.int64)  # the skipped ranges, judged as frames
        self.frames: list[memoryview] = []
        self.skipped: list[tuple[int, int]] = []
        self.torn = 0

    def walk(self) -> StreamScan:
        off, end = 0, self.frame_end(0)
        while off < self.n:
            if end < 0:  # no frame here: resynchronise at the next one
                nxt = self.next_frame(off + 1, self.n)
                if nxt < 0:
                    self.tail(off)
                    break
                self.skip(off, nxt)
                off, end = nxt, self.frame_end(nxt)
                continue
            after = self.frame_end(end) if end < self.n else -1
            if end < self.n and after < 0 and (inner := self.next_frame(off + 1, end)) >= 0:
                # a good frame starts inside this one's claimed length: its count is wrong
                self.skip(off, inner)
                off, end = inner, self.frame_end(inner)
                continue
            self.frames.append(self.view[off:end])
            off, end = end, after
        reasons = {m.name.lower(): int(self.damage[m]) for m in Malformed}
        return StreamScan(self.frames, self.skipped, reasons, self.torn)

    def frame_end(self, at: int) -> int:
        """Where the whole frame that starts at `at` ends; -1 if none passes check_frame."""
        if self.n - at < HEADER_SIZE:
            return -1
        magic, version, _, _, _, count, size = HEADER.unpack_from(self.data, at)
        if magic != MAGIC or version != WIRE_VERSION:  # cheap: most offsets fail here
            return -1
        end = at + HEADER_SIZE + count * size
        if end > self.n:
            return -1
        verdict, _, _ = check_frame(self.arr[at:end], end - at, RECORD_SIZES, self.probe)
        return end if verdict in (IS_DATA, IS_END) else -1

    def next_frame(self, start: int, stop: int) -> int:
        """The first offset in [start, stop) where a whole good frame starts; -1 if none."""
        at = self.data.find(MAGIC, start)
        while 0 <= at < stop:
            if self.frame_end(at) >= 0:
                return at
            at = self.data.find(MAGIC, at + 1)
        return -1

    def cut_short(self, at: int) -> bool:
        """Whether the bytes from `at` to the end are the start of one frame, cut short."""
        tail = self.data[at:]
        if len(tail) < HEADER_SIZE:  # a header cut short: what it has must match
            return (MAGIC + bytes([WIRE_VERSION])).startswith(tail[:5])
        magic, version, kind, code, _, count, size = HEADER.unpack_from(tail)
        return (
            magic == MAGIC
            and version == WIRE_VERSION
            and kind == _DATA
            and size == RECORD_SIZES[code] != 0
            and HEADER_SIZE + count * size > len(tail)
        )

    def tail(self, at: int) -> None:
        """The unreadable rest of the stream: torn if a frame was cut short, else damage."""
        if self.cut_short(at):
            self.torn = self.n - at
        else:
            self.skip(at, self.n)

    def skip(self, start: int, stop: int) -> None:
        """Pass over [start, stop), judging it as frames (split where a magic starts)."""
        cuts = [start]
        while (at := self.data.find(MAGIC, cuts[-1] + 1, stop)) >= 0:
            cuts.append(at)
        for a, b in itertools.pairwise([*cuts, stop]):
            check_frame(self.arr[a:b], b - a, RECORD_SIZES, self.damage)
        if self.skipped and self.skipped[-1][1] == start:  # one range, however many steps
            self.skipped[-1] = (self.skipped[-1][0], stop)
        else:
            self.skipped.append((start, stop))
