"""The feed node: ingress from a publisher into the graph, `ts_feed` stamped."""

from __future__ import annotations

from typing import Any

import numpy as np

from redline.feeds.sequence import SequenceTracker
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.nodes.base import Node
from redline.pipeline.transport.waiting import Waitable

_MAX_BATCHES = 64  # feed batches taken per step, so a burst can't starve the loop


class FeedNode(Node):
    """Ingress from a publisher: sequence-checked, `ts_recv` stamped, forwarded.

    The ingress follows the out edge's policy, so a slow graph never queues
    without limit in this process:
    - `block` (PULL): at most `hwm` messages wait on the socket (RCVHWM); the
      feed stops reading while downstream is full, so a PUSH publisher with a
      send HWM blocks. The publisher must keep its socket open until the graph
      has drained: libzmq discards what is still queued at close once the
      reader's HWM is reached (linger does not help; seen on ipc).
    - `conflate`: the feed is never held back; it drains the socket as fast as
      it is woken and the out edge keeps the latest quote per instrument, so
      what waits is bounded by the instrument count. The socket's own queue
      stays unbounded on purpose: a SUB at its HWM makes the publisher drop
      the newest messages (and the END frame), the opposite of keep-latest.
    Records that never arrive show as sequence gaps and are counted as
    `ingress_drops` on the out edge: no drop is silent. A gap in the source
    itself (e.g. a replay cut by `ts_event` whose seq order differs) counts
    too: the feed cannot tell the two apart.
    """

    kind = "feed"

    def __init__(self, name, spec: gc.FeedSpec, clock, source, tracker: SequenceTracker) -> None:
        """`source`: a feed source (feeds/live/source.py) that stamps `ts_recv` and reports
        sequence numbers to `tracker`; the runtime opens it on the spec's address."""
        super().__init__(name, spec, clock)
        self.tracker = tracker
        self.feed = source
        self._stopping = False

    @property
    def ingress_drops(self) -> int:
        """Records the sequence numbers say were sent and never arrived (gaps not filled late)."""
        t = self.tracker.totals()
        return t["missing"] - t["out_of_order"]

    def waitables(self) -> list[Waitable]:
        return [self.feed]

    def intake(self) -> list[Waitable]:
        return [self.feed]  # the publisher's socket, not an edge

    def step(self) -> int:
        n = 0
        # A conflating output that drops what overflows never holds the feed back: newer
        # quotes replace waiting ones, trades past its bounds are dropped and counted.
        out = self.output
        never_held = out.conflate and out.drop_overflow  # it bounds itself by dropping
        if not self._stopping and not (self.held_back() and not never_held):
            # Coalesce what is waiting: one edge message per run of same-type
            # batches (a send is a syscall, ~20-50 µs here; a concatenate is ~1 µs).
            run: list[np.ndarray] = []
            for _ in range(_MAX_BATCHES):
                batch = self.feed.recv_batch(0.0)
                if batch is None:
                    break
                if run and run[0].dtype != batch.records.dtype:
                    self._send(run)
                    run = []
                run.append(batch.records)
                n += len(batch.records)
            if run:
                self._send(run)
        self.events += n
        if not n and not self.ending and (self.feed.ended or self._stopping):
            self._end()
        return n

    def _send(self, run: list[np.ndarray]) -> None:
        records = run[0] if len(run) == 1 else np.concatenate(run)
        self.output.send(records, stamp_ns=self.clock.now_ns())  # ts_feed

    def stop_intake(self) -> None:
        self._stopping = True

    def close(self) -> None:
        self.feed.close()

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "ingress_drops": self.ingress_drops, "feed": self.feed.stats()}
