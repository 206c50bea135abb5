"""An edge of the graph: record arrays in at one end, out at the other, drops counted.

One small interface for every transport, so nodes, the arbiter and the runtime never see a
socket: `Sender.send` / `Receiver.recv`. What differs per transport is a port that moves one
message (zmq_edge.py: ZeroMQ PUSH/PULL; mem_edge.py: an in-process queue; a shared-memory ring
is planned for co-located processes, FLOORS.md). The reader binds and the writer connects, so
a restarted writer finds its reader again.

A message is records of one dtype plus two stamps: when the writer handed them on, and when
the feed did (`ts_feed`, carried through stages such as features between feed and arbiter).
End of stream is a message of its own: every node forwards it after draining, which is how a
graph stops without losing what it accepted.

Backpressure is explicit per edge:
- `block`: when `hwm` messages are queued the writing node stops taking in work until the
  reader catches up (`Sender.blocked`); nothing is dropped.
- `conflate`: market data, keep the latest quote per instrument. A quote is a whole top of
  book, so an older one is worth nothing once a newer one exists; trades and book deltas are
  changes and are never conflated (they wait like `block`). While the queue is full the writer
  holds the quotes and replaces an instrument's older quote with its newer one; the reader
  collapses what it drained the same way. Every replaced quote is counted in `drops`. A
  replaced record's GAP_BEFORE flag is carried onto its successor, so a sequence gap is never
  conflated away.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple, Protocol

import numpy as np

from redline.feeds.events import QUOTE_DTYPE, Flag


class Message(NamedTuple):
    records: np.ndarray  # read-only view
    sent_ns: int  # the writer's stamp; the newest one when quotes were conflated
    feed_ns: int  # when the feed handed these on (== sent_ns on the feed's own edge)


class SendPort(Protocol):
    """Moves one message into the transport, or says there is no room now."""

    def try_send(self, records: np.ndarray | None, stamp_ns: int, feed_ns: int) -> bool:
        """Queue `records` (None: end of stream) without blocking; False when full."""
        ...

    def close(self) -> None: ...


class RecvPort(Protocol):
    """Takes one message out of the transport; a Waitable (transport/waiting.py)."""

    def take(self) -> tuple[np.ndarray | None, int, int] | None:
        """(records or None at end of stream, sent_ns, feed_ns); None when nothing waits."""
        ...

    def ready(self) -> bool: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


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

    Nodes of one process share a thread, so a writer that blocked on a full queue would stop
    its own reader: a deadlock. Instead a message that finds the queue full waits in `backlog`
    (in order) and the node stops taking in work while `blocked` (block policy: backpressure
    reaches upstream). On a conflate edge the backlog stays bounded whatever the load:
    - a quote replaces every older quote of its instrument wherever it waits in the backlog
      (counted in `drops`), so waiting quotes are at most one per instrument;
    - other records (trades, book deltas, never conflated) are dropped and counted when the
      backlog holds `max_backlog` messages or `max_bytes` bytes (`overflow = "drop"`), or
      wait and hold the writer back like a block edge (`overflow = "block"`).
    """

    def __init__(
        self,
        name: str,
        port: SendPort,
        policy: str,
        *,
        max_backlog: int = 1000,
        max_bytes: int = 64 << 20,
        overflow: str = "drop",
    ) -> None:
        self.name = name
        self.port = port
        self.conflate = policy == "conflate"
        self.max_backlog_msgs = max_backlog
        self.max_bytes = max_bytes
        self.drop_overflow = overflow == "drop"
        self.sent = 0  # records handed to the transport
        self.drops = 0  # records dropped before sending: replaced quotes, overflow
        self.overflow_drops = 0  # of which non-quote records at a full conflating backlog
        self.max_backlog = 0  # most messages ever waiting: shows the queue stays bounded
        self.backlog_bytes = 0
        self.max_backlog_bytes = 0
        self._backlog: deque[tuple[np.ndarray | None, int, int]] = deque()  # None: EOS

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
        if self.conflate and self._backlog:
            if records.dtype == QUOTE_DTYPE:
                records = self._replace_waiting_quotes(records)
            elif self.drop_overflow and self._full():
                self.drops += len(records)
                self.overflow_drops += len(records)
                return
        elif self.conflate and records.dtype == QUOTE_DTYPE:
            records, dropped = keep_latest(records)
            self.drops += dropped
        self._backlog.append((records, stamp_ns, feed_ns))
        self.backlog_bytes += records.nbytes
        self.max_backlog = max(self.max_backlog, len(self._backlog))
        self.max_backlog_bytes = max(self.max_backlog_bytes, self.backlog_bytes)
        self.flush()

    def _full(self) -> bool:
        return len(self._backlog) >= self.max_backlog_msgs or self.backlog_bytes >= self.max_bytes

    def _replace_waiting_quotes(self, records: np.ndarray) -> np.ndarray:
        """The newest quote per instrument of `records`; the older quotes of those instruments
        taken out of the backlog (a GAP_BEFORE flag they carried moves onto the newer one)."""
        records, dropped = keep_latest(records)
        self.drops += dropped
        ids = records["instrument_id"]
        gap = int(Flag.GAP_BEFORE)
        kept: deque[tuple[np.ndarray | None, int, int]] = deque()
        for waiting, s, f in self._backlog:
            if waiting is None or waiting.dtype != QUOTE_DTYPE:
                kept.append((waiting, s, f))
                continue
            old = np.isin(waiting["instrument_id"], ids)
            if old.any():
                flagged = waiting["instrument_id"][old & ((waiting["flags"] & gap) != 0)]
                if len(flagged):
                    if not records.flags.writeable:
                        records = records.copy()
                    records["flags"][np.isin(ids, flagged)] |= gap
                self.drops += int(old.sum())
                self.backlog_bytes -= waiting.nbytes
                waiting = waiting[~old]
                self.backlog_bytes += waiting.nbytes
            if len(waiting):
                kept.append((waiting, s, f))
        self._backlog = kept
        return records

    def send_eos(self) -> None:
        """End the stream after everything queued; `flush()` until True to deliver it."""
        self._backlog.append((None, 0, 0))
        self.flush()

    def flush(self) -> bool:
        """Send waiting messages while there is room; True when none is left."""
        backlog, port = self._backlog, self.port
        while backlog:
            records, stamp_ns, feed_ns = backlog[0]
            if records is not None:
                records = np.ascontiguousarray(records)
            if not port.try_send(records, stamp_ns, feed_ns):
                return False
            if records is not None:
                self.sent += len(records)
                self.backlog_bytes -= records.nbytes
            backlog.popleft()
        return True

    def pending(self) -> int:
        """Records waiting for room (not yet handed to the transport)."""
        return sum(len(r) for r, _, _ in self._backlog if r is not None)

    def close(self) -> None:
        self.port.close()


class Receiver:
    """The reading end of one edge; a Waitable."""

    def __init__(self, name: str, port: RecvPort, policy: str, max_batch: int = 64) -> None:
        self.name = name
        self.port = port
        self.conflate = policy == "conflate"
        self.received = 0  # records taken off the transport
        self.drops = 0  # quotes collapsed away (conflate only)
        self.ended = False  # end of stream seen
        self.max_batch = max_batch  # messages drained per recv, so one edge can't starve others

    def ready(self) -> bool:
        return not self.ended and self.port.ready()

    def fileno(self) -> int:
        return self.port.fileno()

    def recv(self) -> list[Message]:
        """What is waiting now, in arrival order (never blocks; [] when nothing).

        A block edge hands over one message per call (lowest latency). A conflate edge drains
        up to `max_batch` messages and keeps only each instrument's latest quote within each
        run of quote messages. Sets `ended` at end of stream.
        """
        out: list[Message] = []
        take = self.port.take
        for _ in range(self.max_batch):
            if self.ended:
                break
            got = take()
            if got is None:
                break
            records, sent_ns, feed_ns = got
            if records is None:
                self.ended = True
                break
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

    def discard(self) -> int:
        """Take every record waiting without handing it on; returns how many (so a forced
        stop counts what it leaves unread)."""
        n = 0
        while not self.ended and (got := self.port.take()) is not None:
            if got[0] is None:
                self.ended = True
            else:
                n += len(got[0])
        return n

    def close(self) -> None:
        self.port.close()
