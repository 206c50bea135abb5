"""Run one node in memory: records in, the node's steps, what it emitted out. No sockets, no
threads, no sleeps: time is whatever the test's clock says.

    clock = ReplayClock(t0)
    h = Harness(StrategyNode("strategy", spec, clock))   # mem:// edges on its input and output
    h.push(answers, stamp_ns=clock.now_ns())             # onto its input edge
    h.end()                                              # end of stream
    out = h.run()                                        # step until nothing moves
    assert [len(m.records) for m in out] == [...] and h.node.done

A feed node reads a `MemorySource` instead of an edge: batches handed out in order, each record
stamped `ts_recv` from the clock on the way, as a live feed stamps on arrival.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import numpy as np

from redline.feeds.clock import Clock
from redline.feeds.events import Batch, record_type_of
from redline.feeds.sequence import SequenceTracker
from redline.pipeline.graph.nodes.base import Node
from redline.pipeline.transport.edge import Message
from redline.pipeline.transport.opener import Transport


class Harness:
    """One node between in-memory edges; see the module docstring."""

    def __init__(self, node: Node, *, policy: str = "block", hwm: int = 1 << 16) -> None:
        self.node = node
        self._t = Transport()
        spec = node.spec
        self._into = [self._t.sender(e, f"mem://{e}", policy, hwm) for e in spec.inputs]
        node.inputs = [self._t.receiver(e, f"mem://{e}", policy, hwm) for e in spec.inputs]
        outs = spec.outputs
        node.output = self._t.sender(outs[0], f"mem://{outs[0]}", policy, hwm) if outs else None
        self._out = self._t.receiver(outs[0], f"mem://{outs[0]}", policy, hwm) if outs else None
        self.emitted: list[Message] = []
        self.out_ended = False

    def push(self, records: np.ndarray, stamp_ns: int = 0, feed_ns: int = 0, edge: int = 0):
        """Records onto input edge `edge`, stamped as an upstream node would."""
        self._into[edge].send(records, stamp_ns, feed_ns)

    def end(self, edge: int = 0) -> None:
        """End of stream on input edge `edge`."""
        self._into[edge].send_eos()

    def run(self, max_steps: int = 100_000) -> list[Message]:
        """Step the node until a step moves nothing and nothing waits; returns the messages
        emitted during this call (all of them stay in `emitted`)."""
        start = len(self.emitted)
        for _ in range(max_steps):
            moved = self.node.step()
            got = self._collect()
            if not moved and not got and not any(r.ready() for r in self.node.inputs):
                break
        else:
            raise AssertionError(f"node {self.node.name} still busy after {max_steps} steps")
        return self.emitted[start:]

    def _collect(self) -> int:
        if self._out is None:
            return 0
        before = len(self.emitted)
        msgs = self._out.recv()
        while msgs:
            self.emitted.extend(msgs)
            msgs = self._out.recv()
        self.out_ended = self._out.ended
        return len(self.emitted) - before

    def records(self) -> np.ndarray:
        """Every record emitted so far, concatenated."""
        parts = [m.records for m in self.emitted]
        return np.concatenate(parts) if parts else np.zeros(0)

    def close(self) -> None:
        self.node.close()
        self._t.close(linger_s=0)


class MemorySource:
    """A feed source (feeds/live/source.py) over batches in memory, for a feed node in a
    `Harness`: hands them out in order, stamps `ts_recv` from `clock`, reports each batch to
    `tracker`, and ends after the last one."""

    def __init__(
        self, batches: list[np.ndarray], clock: Clock, tracker: SequenceTracker | None = None
    ) -> None:
        self._batches = deque(np.array(b) for b in batches)  # copies: stamping writes them
        self.clock = clock
        self.tracker = tracker
        self._efd = os.eventfd(1 if self._batches else 0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.handed = 0

    @property
    def ended(self) -> bool:
        return not self._batches

    def ready(self) -> bool:
        return bool(self._batches)

    def fileno(self) -> int:
        return self._efd

    def recv_batch(self, timeout: float | None = 0.0) -> Batch | None:
        if not self._batches:
            return None
        records = self._batches.popleft()
        records["ts_recv"] = self.clock.now_ns()
        if self.tracker is not None:
            self.tracker.observe(records)
        self.handed += len(records)
        return Batch(record_type_of(records.dtype), records)

    async def arecv_batch(self) -> Batch | None:
        return self.recv_batch()

    def __iter__(self):
        while self._batches:
            yield self.recv_batch()

    def stats(self) -> dict[str, Any]:
        return {"endpoint": "memory", "records": self.handed}

    def close(self) -> None:
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1
