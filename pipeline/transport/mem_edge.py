"""Edges inside one process (mem://NAME): a bounded queue of arrays, no sockets, no copies.

The sender's arrays are handed over as read-only views, so a reader can never write into what
the writer still holds (what ZeroMQ's received frames give for free). Readiness is an eventfd
written when the queue turns non-empty, so runtimes wait on it like on any other edge; node
tests need no runtime at all: they call a node's `step()` between `send` and `recv`.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque

import numpy as np


class MemQueue:
    """One edge's queue: at most `hwm` messages, single writer, single reader."""

    def __init__(self, hwm: int) -> None:
        self.hwm = hwm
        self.items: deque[tuple[np.ndarray | None, int, int]] = deque()
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.closed = 0  # ends closed; the descriptor goes with the second

    def close_end(self) -> None:
        self.closed += 1
        if self.closed == 2:
            os.close(self.efd)


class MemSendPort:
    def __init__(self, queue: MemQueue) -> None:
        self.q = queue

    def try_send(self, records: np.ndarray | None, stamp_ns: int, feed_ns: int) -> bool:
        q = self.q
        if len(q.items) >= q.hwm:
            return False
        if records is not None:
            records = records.view()
            records.flags.writeable = False
        q.items.append((records, stamp_ns, feed_ns))
        if len(q.items) == 1:
            os.eventfd_write(q.efd, 1)
        return True

    def close(self) -> None:
        self.q.close_end()


class MemRecvPort:
    def __init__(self, queue: MemQueue) -> None:
        self.q = queue

    def ready(self) -> bool:
        return bool(self.q.items)

    def fileno(self) -> int:
        return self.q.efd

    def take(self) -> tuple[np.ndarray | None, int, int] | None:
        items = self.q.items
        if items:
            return items.popleft()
        with contextlib.suppress(BlockingIOError):  # drained: reset the descriptor (an
            os.eventfd_read(self.q.efd)  # append after this shows in ready())
        return None

    def close(self) -> None:
        self.q.close_end()
