"""An edge's transport: record arrays in, record arrays out, drops counted.

One small interface (`Sender.send`, `Receiver.recv`) so the hot path never
sees ZeroMQ; a shared-memory ring (`shm://`, see FLOORS.md) is the planned
second implementation for co-located processes. The reader binds and the
writer connects (PUSH/PULL), so a restarted writer finds its reader again.

A message is two frames: a header naming the dtype (its numpy descr, parsed
once per distinct header and cached) and the records' bytes, sent without a
copy (`copy=False`) and read back as a view of the received frame. A header
of `EOS` with no records ends the stream: every node forwards it after
draining, which is how a graph stops without losing what it accepted.

Backpressure is explicit per edge:
- `block`: the writer waits when `hwm` messages are queued; nothing is dropped.
- `conflate`: market data, keep the latest record per instrument. The writer
  never waits: while the queue is full it holds a pending batch and replaces
  an instrument's older record with its newer one; the reader collapses what
  it drained the same way. Every replaced record is counted in `drops`.
  A replaced record's GAP_BEFORE flag is carried onto its successor, so a
  sequence gap is never conflated away.
"""

from __future__ import annotations

import ast
from typing import Final

import numpy as np
import zmq

from redline.feeds.events import Flag
from redline.pipeline.graph_config import EdgeSpec

EOS: Final = b"EOS"
STALL_MS: Final = 10_000  # a blocked writer gives up (and says so) after this


class EdgeStalled(RuntimeError):
    """A `block` edge's reader stopped taking messages."""


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
        _HEADERS[header] = dtype
    return dtype


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
    """The writing end of one edge."""

    def __init__(self, ctx: zmq.Context, name: str, spec: EdgeSpec) -> None:
        self.name = name
        self.spec = spec
        self.conflate = spec.policy == "conflate"
        self.sent = 0  # records handed to the socket
        self.drops = 0  # records replaced before sending (conflate only)
        self._pending: np.ndarray | None = None
        self._sock = ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.LINGER, 2000)  # let a drain reach the reader
        self._sock.setsockopt(zmq.SNDHWM, spec.hwm)
        self._sock.setsockopt(zmq.SNDTIMEO, STALL_MS)
        self._sock.connect(spec.address)

    def send(self, records: np.ndarray) -> None:
        """Send a batch; blocks when full (block) or conflates (conflate)."""
        if not len(records):
            return
        if not self.conflate:
            self._send(records, 0)
            self.sent += len(records)
            return
        if self._pending is not None:
            both = np.concatenate([self._pending, records])
            records, dropped = keep_latest(both)
            self.drops += dropped
            self._pending = None
        try:
            self._send(records, zmq.NOBLOCK)
            self.sent += len(records)
        except zmq.Again:
            self._pending, dropped = keep_latest(np.array(records, copy=True))
            self.drops += dropped

    def flush(self) -> bool:
        """Try to send a conflated pending batch; True when nothing is pending."""
        if self._pending is None:
            return True
        pending, self._pending = self._pending, None
        self.send(pending)
        return self._pending is None

    def send_eos(self) -> None:
        """End the stream: pending records first, then the EOS frame (always delivered)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._send(pending, 0)
            self.sent += len(pending)
        self._sock.send_multipart([EOS, b""])  # waits (up to STALL_MS) even on a conflate edge

    def _send(self, records: np.ndarray, flags: int) -> None:
        data = np.ascontiguousarray(records)
        try:
            self._sock.send_multipart([header_of(data.dtype), data.data], flags=flags, copy=False)
        except zmq.Again:
            if flags & zmq.NOBLOCK:
                raise
            raise EdgeStalled(
                f"edge '{self.name}' ({self.spec.address}): the reader took nothing for "
                f"{STALL_MS / 1000:.0f} s; is its node running?"
            ) from None

    def close(self) -> None:
        self._sock.close()


class Receiver:
    """The reading end of one edge. Binds its address."""

    def __init__(self, ctx: zmq.Context, name: str, spec: EdgeSpec, max_batch: int = 64) -> None:
        self.name = name
        self.spec = spec
        self.conflate = spec.policy == "conflate"
        self.received = 0  # records read off the socket
        self.drops = 0  # records collapsed away (conflate only)
        self.ended = False  # EOS seen
        self.max_batch = max_batch  # messages drained per recv, so one edge can't starve others
        self.socket = ctx.socket(zmq.PULL)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, spec.hwm)
        self.socket.bind(spec.address)

    def recv(self) -> np.ndarray | None:
        """What is waiting now (never blocks): one array, or None.

        Drains up to `max_batch` messages; a conflate edge keeps only each
        instrument's latest record among them. Sets `ended` at EOS.
        """
        parts: list[np.ndarray] = []
        for _ in range(self.max_batch):
            if self.ended:
                break
            try:
                header, data = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            head = header.bytes
            if head == EOS:
                self.ended = True
                break
            parts.append(np.frombuffer(data.buffer, dtype=dtype_of(head)))
            if not self.conflate:
                break  # block edges hand over message by message: lowest latency
        if not parts:
            return None
        records = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self.received += len(records)
        if self.conflate and len(records) > 1:
            records, dropped = keep_latest(records)
            self.drops += dropped
        return records

    def close(self) -> None:
        self.socket.close()
