"""ZeroMQ feed: SUB (or PULL) on any endpoint, `ts_recv` stamped on arrival.

Each message part is one wire frame, received straight into an `Arena`
(`recv_into`, no per-message allocation) and decoded as a view, so a batch
costs one syscall, one header unpack and two field writes. One stamp per
message: every record in it arrived at the same instant. The stamp is the
user-space clock read right after the first part returned (TsSource.USER);
ZeroMQ hides the kernel's receive time, the UDP feed does not.

Busy-poll with `recv_batch(0.0)`; block with a timeout; or `await
arecv_batch()`. On this 2-vCPU class a NOBLOCK spin starves libzmq's I/O
thread (FLOORS.md: p99 ~3 ms), so prefer a timeout unless a core is free.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import zmq

from redline.feeds.arena import Arena
from redline.feeds.events import TsSource
from redline.feeds.sequence import SequenceTracker
from redline.feeds.source import wait_readable
from redline.feeds.wire import END_OF_STREAM, Batch, Decoder, Malformed
from redline.pipeline.clock import Clock, LiveClock

_KINDS = {"sub": zmq.SUB, "pull": zmq.PULL}


class ZmqFeed:
    """A feed on a ZeroMQ endpoint.

    endpoint: `tcp://HOST:PORT`, `ipc://PATH` or `inproc://NAME` (inproc
      needs the publisher's `context`).
    kind: "sub" (default) or "pull". bind: bind instead of connect.
    topics: SUB prefixes (`wire.topic(rtype)`); default: everything.
    tracker: a SequenceTracker fed every batch (None: no sequence checks).
    expected_ends: END frames (one per publisher) that end the stream.
    max_frame_bytes: largest frame accepted (larger ones are counted OVERSIZE).
    arena_bytes: receive arena size (default 4 MiB, at least 4 frames).
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
        rcvhwm: int = 0,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"ZmqFeed: kind must be one of {sorted(_KINDS)}, got {kind!r}")
        if expected_ends < 1:
            raise ValueError(f"ZmqFeed: expected_ends must be >= 1, got {expected_ends}")
        self.endpoint = endpoint
        self.clock = clock or LiveClock()
        self.tracker = tracker
        self.expected_ends = expected_ends
        self.decoder = Decoder()
        self.ended = False
        self.messages = 0
        self._arena = Arena(max_frame_bytes, arena_bytes)
        self._pending: deque[Batch] = deque()
        self._ctx = context or zmq.Context.instance()
        self.socket = self._ctx.socket(_KINDS[kind])
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, rcvhwm)
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

    # -- receiving -----------------------------------------------------------

    def _receive(self, flags: int) -> None:
        """Take one message (all its parts); raises zmq.Again when none is waiting."""
        sock, arena, dec = self.socket, self._arena, self.decoder
        slot = arena.slot()
        n = sock.recv_into(slot, flags=flags)
        now = self.clock.now_ns()
        self.messages += 1
        while True:
            if n > arena.max_frame:
                dec.skip(Malformed.OVERSIZE)
            else:
                out = dec.decode(slot[:n])
                if out is END_OF_STREAM:
                    if dec.ends >= self.expected_ends:
                        self.ended = True
                elif out is not None:
                    arena.keep(n)
                    recs = out.records
                    recs["ts_recv"] = now
                    recs["ts_recv_source"] = TsSource.USER
                    if self.tracker is not None:
                        self.tracker.observe(recs)
                    self._pending.append(out)
            if not sock.getsockopt(zmq.RCVMORE):
                return
            slot = arena.slot()
            n = sock.recv_into(slot)

    def recv_batch(self, timeout: float | None = 0.0) -> Batch | None:
        """The next batch; None if none came within `timeout` seconds (0: don't
        wait, None: wait forever) or the stream has ended."""
        pending = self._pending
        if pending:
            return pending.popleft()
        if self.ended:
            return None
        if timeout == 0.0:
            try:
                self._receive(zmq.NOBLOCK)
            except zmq.Again:
                return None
            return pending.popleft() if pending else None
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ended:
            if deadline is None:
                self._receive(0)
            else:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms < 0 or not self.socket.poll(max(left_ms, 0), zmq.POLLIN):
                    return None
                self._receive(zmq.NOBLOCK)
            if pending:
                return pending.popleft()
        return None

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
            batch = self.recv_batch(0.1)
            if batch is not None:
                yield batch
        while self._pending:
            yield self._pending.popleft()

    # -- reporting and lifetime ------------------------------------------------

    def stats(self) -> dict[str, Any]:
        dec = self.decoder
        out: dict[str, Any] = {
            "endpoint": self.endpoint,
            "messages": self.messages,
            "frames": dec.frames,
            "events": dec.records,
            "ends": dec.ends,
            "malformed": dec.malformed_total,
            "malformed_by_reason": dec.malformed_by_reason(),
        }
        if self.tracker is not None:
            out["sequence"] = self.tracker.totals()
        return out

    def close(self) -> None:
        self.socket.close(0)

    def __enter__(self) -> ZmqFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
