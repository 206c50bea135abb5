"""ZeroMQ feed: SUB (or PULL) on any endpoint, `ts_recv` stamped on arrival.

A receive takes every frame already waiting, in one call of the compiled loop
in `zmq_drain.py` (up to `max_frames`): each frame is judged, stamped with the
clock read right after it arrived (TsSource.USER: ZeroMQ hides the kernel's
receive time, the UDP feed does not), and its records are copied back to back
into an arena. Consecutive frames of one record type come out as one batch, so
a burst of one-record frames costs one Python step, not one per frame.

Busy-poll with `recv_batch(0.0)`; block with a timeout; or `await
arecv_batch()`. On this 2-vCPU class a NOBLOCK spin starves libzmq's I/O
thread (FLOORS.md: p99 ~3 ms), so prefer a timeout unless a core is free.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any

import numpy as np
import zmq

from redline.feeds.clock import Clock, LiveClock
from redline.feeds.events import Batch
from redline.feeds.live.source import wait_readable
from redline.feeds.sequence import SequenceTracker
from redline.feeds.wire.frames import BY_CODE, RECORD_SIZES, Decoder
from redline.feeds.wire.zmq_drain import EAGAIN, EINTR, HEADER_AT, RUN_FIELDS, drain

_KINDS = {"sub": zmq.SUB, "pull": zmq.PULL}
_new_batch = tuple.__new__
_view = np.frombuffer  # (buffer, dtype, count, offset): half the cost of slice-then-view
_SPARES = 4  # full arenas kept for reuse
_WAIT_SLICE_MS = 50  # a blocking receive returns to Python this often (signals, Ctrl-C)


class ZmqFeed:
    """A feed on a ZeroMQ endpoint.

    endpoint: `tcp://HOST:PORT`, `ipc://PATH` or `inproc://NAME` (inproc
      needs the publisher's `context`).
    kind: "sub" (default) or "pull". bind: bind instead of connect.
    topics: SUB prefixes (`wire.topic(rtype)`); default: everything.
    tracker: a SequenceTracker fed every batch (None: no sequence checks).
    expected_ends: END frames (one per publisher) that end the stream.
    max_frame_bytes: largest frame accepted (larger ones are counted OVERSIZE).
    arena_bytes: record arena size (default 4 MiB, at least 4 largest frames);
      batches view it, and a full one is replaced, never reused.
    max_frames: most frames taken in one receive.
    rcvhwm: ZeroMQ receive high-water mark in messages; 0 = unbounded, so a
      slow consumer queues instead of silently dropping on SUB.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        kind: str = "sub",
        bind: bool = False,
        topics: tuple[bytes, ...] = (b"",),
        context: zmq.Context | None = None,
        clock: Clock | None = None,
        tracker: SequenceTracker | None = None,
        expected_ends: int = 1,
        max_frame_bytes: int = 1 << 20,
        arena_bytes: int | None = None,
        max_frames: int = 256,
        rcvhwm: int = 0,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"ZmqFeed: kind must be one of {sorted(_KINDS)}, got {kind!r}")
        if expected_ends < 1:
            raise ValueError(f"ZmqFeed: expected_ends must be >= 1, got {expected_ends}")
        if max_frames < 1:
            raise ValueError(f"ZmqFeed: max_frames must be >= 1, got {max_frames}")
        if max_frame_bytes < 16:
            raise ValueError(f"ZmqFeed: max_frame_bytes must be >= 16, got {max_frame_bytes}")
        self.endpoint = endpoint
        self.clock = clock or LiveClock()
        self.tracker = tracker
        self.expected_ends = expected_ends
        self.decoder = Decoder()
        self._end_seen = False  # the expected END frames arrived (batches may still wait)
        self.parts = 0  # message parts received, good or not
        self._live = type(self.clock) is LiveClock  # stamp in the loop, else once per receive
        self._max_frame = max_frame_bytes
        self._arena_bytes = max(arena_bytes or 4 << 20, 4 * max_frame_bytes)
        self._arena = np.empty(0, np.uint8)
        self._spare: list[np.ndarray] = []  # full arenas, reused once no batch views them
        self._off = 0
        self._max_frames = max_frames
        self._runs = np.empty(max_frames * RUN_FIELDS, np.int64)
        self._ts = np.empty(2, np.int64)
        self._pending: deque[Batch] = deque()
        self._ctx = context or zmq.Context.instance()
        self.socket = self._ctx.socket(_KINDS[kind])
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self.socket.setsockopt(zmq.RCVTIMEO, _WAIT_SLICE_MS)
        if kind == "sub":
            for t in topics:
                self.socket.setsockopt(zmq.SUBSCRIBE, t)
        try:
            (self.socket.bind if bind else self.socket.connect)(endpoint)
        except zmq.ZMQError as exc:
            self.socket.close(0)
            raise ValueError(
                f"ZmqFeed: cannot {'bind' if bind else 'connect'} {endpoint!r}: {exc}"
            ) from None
        if bind and endpoint.endswith(":*"):
            self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._handle = self.socket.underlying  # 0 once closed: the loop never sees it
        # Load the compiled loop now (~0.3 s from numba's cache), not on the first event;
        # anything already waiting is simply taken early.
        self._receive()

    @property
    def ended(self) -> bool:
        """The expected END frames arrived and every batch before them was handed out."""
        return self._end_seen and not self._pending

    # -- receiving -----------------------------------------------------------

    def _receive(self, wait: bool = False) -> None:
        """Take every frame waiting (up to max_frames) into `_pending`; with `wait`, first
        wait up to _WAIT_SLICE_MS for one inside libzmq."""
        if not self._handle:
            raise zmq.ZMQError(zmq.ENOTSOCK, "ZmqFeed: receive after close()")
        if self._arena.size - self._off < self._max_frame:
            self._next_arena()
        arena = self._arena
        n_runs, self._off, taken, err, end = drain(
            self._handle,
            arena,
            self._off,
            self._max_frame,
            self._max_frames,
            wait,
            -1 if self._live else self.clock.now_ns(),
            RECORD_SIZES,
            HEADER_AT,
            self.decoder.counts,
            self._runs,
            self._ts,
        )
        self.parts += taken
        tracker, pending = self.tracker, self._pending
        runs = self._runs[: n_runs * RUN_FIELDS].tolist()
        for i in range(0, len(runs), RUN_FIELDS):
            code, at, count, source, first, last, in_order = runs[i : i + RUN_FIELDS]
            rtype, dtype = BY_CODE[code]
            recs = _view(arena, dtype, count, at)
            if tracker is not None:
                tracker.observe_run(recs, source, first, last, in_order)
            pending.append(_new_batch(Batch, (rtype, recs)))
        if end and self.decoder.ends >= self.expected_ends:
            self._end_seen = True
        if err and err != EAGAIN and err != EINTR:
            raise zmq.ZMQError(err)

    def _next_arena(self) -> None:
        """Move to an arena nobody views: a spare one if it is free (its pages
        are already mapped in: a new one costs a page fault per 4 KiB), else new."""
        spare = self._spare
        if self._arena.size:
            spare.append(self._arena)
        for i in range(len(spare)):
            if sys.getrefcount(spare[i]) == 2:  # held by `spare` and the call alone
                self._arena = spare.pop(i)
                break
        else:
            self._arena = np.empty(self._arena_bytes, np.uint8)
        del spare[:-_SPARES]  # batches still held elsewhere keep theirs alive
        self._off = 0

    def ready(self) -> bool:
        """A batch can be had now without waiting."""
        return bool(self._pending) or bool(self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    def fileno(self) -> int:
        """Readable when frames may have arrived (edge-triggered: ask `ready()` first)."""
        return self.socket.getsockopt(zmq.FD)

    def recv_batch(self, timeout: float | None = 0.0) -> Batch | None:
        """The next batch; None if none came within `timeout` seconds (0: don't
        wait, None: wait forever) or the stream has ended."""
        pending = self._pending
        if pending:
            return pending.popleft()
        if self.ended:
            return None
        if timeout is None:  # block inside libzmq: ~20 µs sooner than zmq_poll then receive
            while not pending and not self._end_seen:
                self._receive(wait=True)  # returns every slice, so signals are handled
            return pending.popleft() if pending else None
        self._receive()
        if pending or timeout == 0.0:
            return pending.popleft() if pending else None
        deadline = time.monotonic() + timeout
        while not pending and not self._end_seen:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms < 0 or not self.socket.poll(left_ms, zmq.POLLIN):
                break
            self._receive()
        return pending.popleft() if pending else None

    async def arecv_batch(self) -> Batch | None:
        """Await the next batch; None only once the stream has ended."""
        while True:
            batch = self.recv_batch(0.0)
            if batch is not None or self.ended:
                return batch
            # ZeroMQ's FD is edge-triggered; the periodic recheck covers a missed edge.
            if not self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                await wait_readable(self.socket.getsockopt(zmq.FD), 0.05)

    def __iter__(self):
        while not self.ended:
            batch = self.recv_batch(None)
            if batch is not None:
                yield batch

    # -- reporting and lifetime ------------------------------------------------

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "endpoint": self.endpoint,
            "parts": self.parts,
            **self.decoder.stats(),
        }
        if self.tracker is not None:
            out["sequence"] = self.tracker.totals()
        return out

    def close(self) -> None:
        self._handle = 0
        self.socket.close(0)

    def __enter__(self) -> ZmqFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
