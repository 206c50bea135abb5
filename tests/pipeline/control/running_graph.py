"""A real graph (the runtime, ipc edges, a fake arbiter) running in a thread while a test
commands it: quotes published at a steady pace so decisions keep coming."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import zmq

from redline.feeds.events import QUOTE_DTYPE, Batch, RecordType
from redline.feeds.live.publisher import publish_batches
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.runtime import Runtime

GRAPH_DIR = Path(__file__).resolve().parents[1] / "graph"

GRAPH = """
[graph]
name = "{name}"
budget_us = 1000000

[edges.ticks]
address = "ipc://{d}/ticks"
policy = "block"
hwm = 64

[edges.answers]
address = "ipc://{d}/answers"

[edges.decisions]
address = "{decisions}"

[nodes.feed]
kind = "feed"
source = "ipc://{d}/pub"
socket = "pull"
out = "ticks"

[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"
instruments = [1, 2]

[nodes.strategy]
kind = "strategy"
in = "answers"
out = "decisions"
threshold = 0.5
max_position = 1000000
max_orders_per_s = 1000000
stale_after_us = 10000000

[nodes.journal]
kind = "journal"
in = "decisions"
path = "{d}/journal.arrow"
flush_interval_ms = 20
"""


def fake_arbiter():
    sys.path.insert(0, str(GRAPH_DIR))
    from fake_arbiter import FakeArbiter  # answers every ask at once: +0.9 even seq, -0.9 odd

    return FakeArbiter


def quotes(n: int, step_ns: int) -> np.ndarray:
    q = np.zeros(n, QUOTE_DTYPE)
    q["seq"] = np.arange(n)
    q["instrument_id"] = 1 + np.arange(n) % 2
    q["ts_event"] = q["ts_recv"] = 1_000_000 + np.arange(n) * step_ns
    q["bid_px"] = 10_000
    q["ask_px"] = 10_002
    q["bid_sz"] = q["ask_sz"] = 5
    return q


class RunningGraph:
    """`with RunningGraph(tmp_path) as g:` the graph runs; at exit it drains and stops."""

    def __init__(self, tmp_path: Path, extra: str = "", n: int = 40_000, step_ns: int = 500_000,
                 decisions: str = "", real_workers: bool = False) -> None:  # fmt: skip
        self.name = f"t{uuid.uuid4().hex[:8]}"  # one per test: discovery finds this one
        text = GRAPH.format(name=self.name, d=tmp_path,
                            decisions=decisions or f"ipc://{tmp_path}/decisions") + extra  # fmt: skip
        self.spec = gc.parse(text)
        self.journal = tmp_path / "journal.arrow"
        # real workers: two `redline worker` processes on the bundled model (graph/arbiter_build)
        self.rt = Runtime(self.spec, arbiter_factory=None if real_workers else fake_arbiter())
        self.code: int | None = None
        self.published = quotes(n, step_ns)  # n quotes over n * step_ns of wall time
        self._run = threading.Thread(target=self._main, daemon=True)
        self._stop_publishing = threading.Event()
        self._pub = threading.Thread(target=self._publish, args=(f"ipc://{tmp_path}/pub",),
                                     daemon=True)  # fmt: skip

    def _batches(self):
        """The quotes in chunks, until the test is done with the graph."""
        for i in range(0, len(self.published), 100):
            if self._stop_publishing.is_set():
                return
            yield Batch(RecordType.QUOTE, self.published[i : i + 100])

    def _publish(self, endpoint: str) -> None:
        try:
            publish_batches(self._batches(), endpoint, speed=1.0, wait_timeout_s=10, max_batch=8,
                            context=zmq.Context(), spin_ns=0, socket="push")  # fmt: skip
        except TimeoutError:
            if not self._stop_publishing.is_set():  # a graph that drained reads no more: fine
                raise

    def _main(self) -> None:
        self.code = self.rt.run()

    @property
    def address(self) -> str:
        return self.rt.control.sock.address

    @property
    def decisions(self) -> int:
        return self.rt.nodes["strategy"].decisions

    def wait_decisions(self, more_than: int, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.decisions <= more_than:
            assert time.monotonic() < deadline, f"no decisions past {more_than}"
            assert self._run.is_alive(), f"the graph ended (exit {self.code})"
            time.sleep(0.01)
        return self.decisions

    def join(self, timeout_s: float = 60.0) -> int | None:
        self._run.join(timeout_s)
        return self.code

    def __enter__(self) -> RunningGraph:
        self._run.start()
        self._pub.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_publishing.set()  # the publisher ends its stream: the graph drains and ends
        # (a graph already drained reads nothing more: its publisher is left to time out)
        self._pub.join(30 if self._run.is_alive() else 0.1)
        self._run.join(60)
