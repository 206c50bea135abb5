"""ZeroMQ feed: SUB (or PULL) on any endpoint, `ts_recv` stamped on arrival.

Each message part is one wire frame, received straight into an `Arena`
(`recv_into`, no per-message allocation) and decoded as a view, so a batch
costs one receive, one header unpack and two field writes. One stamp per
frame: every record in it arrived at the same instant. The stamp is the
user-space clock read right after the first part returned (TsSource.USER);
ZeroMQ hides the kernel's receive time, the UDP feed does not.

Busy-poll with `recv_batch(0.0)`; block with a timeout; or `await
arecv_batch()`. On this 2-vCPU class a NOBLOCK spin starves libzmq's I/O
thread (FLOORS.md: p99 ~3 ms), so prefer a timeout unless a core is free.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import zmq

from redline.feeds.arena import Arena
from redline.feeds.events import QUOTE_DTYPE, TsSource
from redline.feeds.sequence import SequenceTracker
from redline.feeds.source import wait_readable
from redline.feeds.wire import END_OF_STREAM, HEADER_SIZE, Batch, Decoder, Malformed
from redline.pipeline.clock import Clock, LiveClock

_KINDS = {"sub": zmq.SUB, "pull": zmq.PULL}
# Plain ints for the hot path: enum attribute lookups cost ~0.5 µs each on Python 3.11.
_NOBLOCK = int(zmq.NOBLOCK)
_USER = int(TsSource.USER)
# Offsets of the header stamps in the first record of a frame (same for every dtype).
_TS_RECV_AT = HEADER_SIZE + QUOTE_DTYPE.fields["ts_recv"][1]
_SOURCE_AT = HEADER_SIZE + QUOTE_DTYPE.fields["ts_recv_source"][1]
_pack_i8 = struct.Struct("<q").pack_into
_OVERSIZE = int(Malformed.OVERSIZE)


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
        self.parts = 0  # message parts received, good or not
        self._arena = Arena(max_frame_bytes, arena_bytes)
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

    def _receive(self, flags: int) -> Batch | None:
        """Take one frame (one message part); raises zmq.Again when none is waiting.

        Parts are taken one at a time: every part is a whole frame, and ZeroMQ
        delivers a multipart message at once, so its later parts never block.
        Not asking for RCVMORE saves ~2 µs a message (pyzmq getsockopt).
        """
        arena, dec = self._arena, self.decoder
        slot = arena.slot()
        n = self.socket.recv_into(slot, flags=flags)
        now = self.clock.now_ns()
        self.parts += 1
        out = dec.decode(slot, n) if n <= arena.max_frame else dec.skip(_OVERSIZE)
        if out is None:
            return None
        if out is END_OF_STREAM:
            if dec.ends >= self.expected_ends:
                self.ended = True
            return None
        arena.keep(n)
        recs = out[1]
        if len(recs) != 1:
            recs["ts_recv"] = now
            recs["ts_recv_source"] = _USER
        else:  # one record: two pokes into the buffer cost a third of two field writes
            _pack_i8(slot, _TS_RECV_AT, now)
            slot[_SOURCE_AT] = _USER
        if self.tracker is not None:
            self.tracker.observe(recs)
        return out

    def recv_batch(self, timeout: float | None = 0.0) -> Batch | None:
        """The next batch; None if none came within `timeout` seconds (0: don't
        wait, None: wait forever) or the stream has ended."""
        if self.ended:
            return None
        if timeout == 0.0:
            try:
                return self._receive(_NOBLOCK)
            except zmq.Again:
                return None
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ended:
            if deadline is None:
                out = self._receive(0)
            else:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms < 0 or not self.socket.poll(max(left_ms, 0), zmq.POLLIN):
                    return None
                out = self._receive(_NOBLOCK)
            if out is not None:
                return out
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
        self.socket.close(0)

    def __enter__(self) -> ZmqFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
