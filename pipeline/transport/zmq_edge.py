"""An edge's transport: record arrays in, record arrays out, drops counted.

One small interface (`Sender.send`, `Receiver.recv`) so the hot path never
sees ZeroMQ; a shared-memory ring (`shm://`, see FLOORS.md) is the planned
second implementation for co-located processes. The reader binds and the
writer connects (PUSH/PULL), so a restarted writer finds its reader again.

A message is three frames: a header naming the dtype (its numpy descr, parsed
once per distinct header and cached), two stamps (int64 ns: when this writer
handed the records on, and when the feed did, `ts_feed`, carried through
stages such as features that sit between the feed and the arbiter) and the records' bytes, sent
without a copy (`copy=False`) and read back as a view of the received frame. A header
of `EOS` with no records ends the stream: every node forwards it after
draining, which is how a graph stops without losing what it accepted.

Backpressure is explicit per edge:
- `block`: when `hwm` messages are queued the writing node stops taking in
  work until the reader catches up (`Sender.blocked`); nothing is dropped.
- `conflate`: market data, keep the latest quote per instrument. A quote is
  a whole top of book, so an older one is worth nothing once a newer one
  exists; trades and book deltas are changes and are never conflated (they
  wait like `block`). While the queue is full the writer holds the quotes and
  replaces an instrument's older quote with its newer one; the reader
  collapses what it drained the same way. Every replaced
  quote is counted in `drops`.
  A replaced record's GAP_BEFORE flag is carried onto its successor, so a
  sequence gap is never conflated away.
"""

from __future__ import annotations

import ast
import struct
from collections import deque
from typing import Final, NamedTuple

import numpy as np
import zmq

from redline.feeds.events import DTYPES, QUOTE_DTYPE, Flag
from redline.pipeline.graph.config import EdgeSpec

EOS: Final = b"EOS"
_STAMPS = struct.Struct("<qq")  # (this writer's stamp, ts_feed)


_HEADERS: dict[bytes, np.dtype] = {}  # header bytes -> dtype, parsed once
_TAGS: dict[np.dtype, bytes] = {}


def header_of(dtype: np.dtype) -> bytes:
    tag = _TAGS.get(dtype)
    if tag is None:
        tag = repr(np.lib.format.dtype_to_descr(dtype)).encode()
        _TAGS[dtype] = tag
        _HEADERS[tag] = dtype
    return tag


def dtype_of(header: bytes) -> np.dtype:
    dtype = _HEADERS.get(header)
    if dtype is None:
        try:
            dtype = np.lib.format.descr_to_dtype(ast.literal_eval(header.decode()))
        except (ValueError, SyntaxError, UnicodeDecodeError, TypeError) as exc:
            raise ValueError(f"edge message header {header[:60]!r} is not a dtype: {exc}") from None
        # An event dtype comes back as the canonical object: a parsed copy compares equal,
        # but np.concatenate of two such arrays yields a dtype that no longer does (numpy
        # 2.4), which the journal's DECISION_DTYPE check then refuses.
        dtype = next((known for known in DTYPES.values() if known == dtype), dtype)
        _HEADERS[header] = dtype
    return dtype


class Message(NamedTuple):
    records: np.ndarray  # read-only view of the received frame
    sent_ns: int  # the writer's stamp; the newest one when quotes were conflated
    feed_ns: int  # when the feed handed these on (== sent_ns on the feed's own edge)


def keep_latest(records: np.ndarray) -> tuple[np.ndarray, int]:
    """The last record per instrument, in arrival order, and how many were dropped."""
    ids = records["instrument_id"]
    # np.unique on the reversed ids finds each instrument's last occurrence.
    _, rev_first = np.unique(ids[::-1], return_index=True)
    last = np.sort(len(ids) - 1 - rev_first)
    dropped = len(records) - len(last)
    if not dropped:
        return records, 0
    kept = records[last]
    gap = int(Flag.GAP_BEFORE)
    flagged = ids[(records["flags"] & gap) != 0]
    if len(flagged):  # a gap seen in a dropped record stays visible
        kept["flags"][np.isin(kept["instrument_id"], flagged)] |= gap
    return kept, dropped


class Sender:
    """The writing end of one edge. Never blocks the calling thread.

    Nodes of one process share a thread, so a writer that blocked on a full
    queue would stop its own reader: a deadlock. Instead a message that finds
    the queue full waits in `backlog` (in order) and the node stops taking in
    work while `blocked` (block policy: backpressure reaches upstream), or
    merges newer quotes into a waiting quote message (conflate). The backlog
    is bounded by one step's output per node, plus un-conflatable trades.
    """

    def __init__(self, ctx: zmq.Context, name: str, spec: EdgeSpec) -> None:
        self.name = name
        self.spec = spec
        self.conflate = spec.policy == "conflate"
        self.sent = 0  # records handed to the socket
        self.drops = 0  # quotes replaced before sending (conflate only)
        self.max_backlog = 0  # most messages ever waiting: shows the queue stays bounded
        self._backlog: deque[tuple[np.ndarray | None, int, int]] = deque()  # None: EOS
        self._sock = ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.LINGER, 2000)  # let a drain reach the reader
        self._sock.setsockopt(zmq.SNDHWM, spec.hwm)
        self._sock.connect(spec.address)

    @property
    def blocked(self) -> bool:
        """Messages are waiting for room: a node should not take in more work."""
        return bool(self._backlog)

    def send(self, records: np.ndarray, stamp_ns: int = 0, feed_ns: int = 0) -> None:
        """Queue a batch stamped `stamp_ns` (and `feed_ns`, default the same) and send what
        fits now."""
        if not len(records):
            return
        feed_ns = feed_ns or stamp_ns
        if self.conflate and records.dtype == QUOTE_DTYPE:
            last = self._backlog[-1][0] if self._backlog else None
            if last is not None and last.dtype == QUOTE_DTYPE:  # merge into the waiting quotes
                records = np.concatenate([last, records])
                self._backlog.pop()
            records, dropped = keep_latest(records)
            self.drops += dropped
        self._backlog.append((records, stamp_ns, feed_ns))
        self.max_backlog = max(self.max_backlog, len(self._backlog))
        self.flush()

    def send_eos(self) -> None:
        """End the stream after everything queued; `flush()` until True to deliver it."""
        self._backlog.append((None, 0, 0))
        self.flush()

    def flush(self) -> bool:
        """Send waiting messages while there is room; True when none is left."""
        sock = self._sock
        while self._backlog:
            records, stamp_ns, feed_ns = self._backlog[0]
            try:
                if records is None:
                    sock.send_multipart([EOS, b"", b""], flags=zmq.NOBLOCK)
                else:
                    data = np.ascontiguousarray(records)
                    stamps = _STAMPS.pack(stamp_ns, feed_ns)
                    frames = [header_of(data.dtype), stamps, data.data]
                    sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                    self.sent += len(data)
            except zmq.Again:
                return False
            self._backlog.popleft()
        return True

    def close(self) -> None:
        self._sock.close()


class Receiver:
    """The reading end of one edge. Binds its address."""

    def __init__(self, ctx: zmq.Context, name: str, spec: EdgeSpec, max_batch: int = 64) -> None:
        self.name = name
        self.spec = spec
        self.conflate = spec.policy == "conflate"
        self.received = 0  # records read off the socket
        self.drops = 0  # quotes collapsed away (conflate only)
        self.ended = False  # EOS seen
        self.max_batch = max_batch  # messages drained per recv, so one edge can't starve others
        self.socket = ctx.socket(zmq.PULL)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, spec.hwm)
        self.socket.bind(spec.address)

    def recv(self) -> list[Message]:
        """What is waiting now, in arrival order (never blocks; [] when nothing).

        A block edge hands over one message per call (lowest latency). A
        conflate edge drains up to `max_batch` messages and keeps only each
        instrument's latest quote within each run of quote messages. Sets
        `ended` at EOS.
        """
        out: list[Message] = []
        for _ in range(self.max_batch):
            if self.ended:
                break
            # Nothing waiting is the common case: ZMQ_EVENTS (~1 µs) instead of a zmq.Again
            # exception (~20 µs) from an empty recv.
            if not self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                break
            try:
                header, stamp, data = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            head = header.bytes
            if head == EOS:
                self.ended = True
                break
            records = np.frombuffer(data.buffer, dtype=dtype_of(head))
            sent_ns, feed_ns = _STAMPS.unpack(stamp.buffer)
            self.received += len(records)
            if not self.conflate:
                out.append(Message(records, sent_ns, feed_ns))
                break
            if records.dtype == QUOTE_DTYPE:
                if out and out[-1].records.dtype == QUOTE_DTYPE:
                    older = out.pop()
                    records = np.concatenate([older.records, records])
                    sent_ns = max(sent_ns, older.sent_ns)
                    feed_ns = max(feed_ns, older.feed_ns)
                records, dropped = keep_latest(records)
                self.drops += dropped
            out.append(Message(records, sent_ns, feed_ns))
        return out

    def close(self) -> None:
        self.socket.close()
