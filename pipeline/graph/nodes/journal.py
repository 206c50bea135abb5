"""The journal node: the graph's sink; every decision journaled, counted and timed."""

from __future__ import annotations

from typing import Any

import numpy as np

from redline.pipeline.graph import config as gc
from redline.pipeline.graph.nodes.base import Node
from redline.pipeline.observe.latency import LatencyStats, count_by_origin, count_deadline_misses

_ACCOUNT_ROWS = 256  # the journal node accounts latency once this many decisions wait ...
_ACCOUNT_EVERY_NS = 50_000_000  # ... or the oldest has waited this long (or at stats/end)


class JournalNode(Node):
    """Sink: every decision journaled (if a path is set), counted and timed."""

    kind = "journal"

    def __init__(self, name, spec: gc.JournalSpec, clock, on_decisions=()) -> None:
        super().__init__(name, spec, clock)
        self.latency = LatencyStats()
        self.by_origin: dict[str, int] = {}
        self.deadline_misses = 0
        self.listeners = list(on_decisions)  # e.g. Metrics.observe_decisions
        # Latency and origin counts are accounted in chunks: LatencyStats.record is ~60 numpy
        # calls whatever the batch size, and the decisions mostly come one at a time.
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._pending_since = 0
        self.journal = None
        self.previous: str | None = None  # where an earlier run's journal was kept
        if spec.path:
            from redline.pipeline.observe.journal import Journal, move_aside

            # A restart (after a crash, or a second run of the same graph file) rotates: the
            # earlier journal is kept as STEM.N.arrow, never overwritten, never appended to.
            aside = move_aside(spec.path)
            self.previous = None if aside is None else str(aside)
            self.journal = Journal(
                spec.path, clock=clock, flush_interval_ns=spec.flush_interval_ms * 1_000_000
            )

    def timeout_s(self) -> float | None:
        t = self.spec.flush_interval_ms / 1000 if self.journal is not None else None
        if self._pending:
            t = _ACCOUNT_EVERY_NS / 1e9 if t is None else min(t, _ACCOUNT_EVERY_NS / 1e9)
        return t

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        for decisions, _, _ in rx.recv():
            if self.journal is not None:
                self.journal.append(decisions)
            if not self._pending:
                self._pending_since = self.clock.monotonic_ns()
            self._pending.append(decisions)  # owns its received frame: safe to keep
            self._n_pending += len(decisions)
            for fn in self.listeners:
                fn(decisions)
            n += len(decisions)
        if self._pending and (
            self._n_pending >= _ACCOUNT_ROWS
            or self.clock.monotonic_ns() - self._pending_since >= _ACCOUNT_EVERY_NS
        ):
            self._account()
        self.events += n
        if self.journal is not None and not n:
            self.journal.maybe_flush()
        if rx.ended and not self.ending:
            self._end()
        return n

    def _account(self) -> None:
        """Latency histograms, origin and deadline-miss counts of the pending decisions."""
        if not self._pending:
            return
        decisions = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending.clear()
        self._n_pending = 0
        self.latency.record(decisions)
        for k, v in count_by_origin(decisions).items():
            self.by_origin[k] = self.by_origin.get(k, 0) + v
        self.deadline_misses += count_deadline_misses(decisions)

    def _end(self) -> None:
        self._account()
        if self.journal is not None:
            self.journal.close()
        self.ending = True

    def close(self) -> None:
        if self.journal is not None and not self.ending:
            self.journal.close()

    def stats(self) -> dict[str, Any]:
        self._account()
        return {
            **super().stats(),
            "decisions": self.events,
            "decisions_by_origin": dict(self.by_origin),
            "deadline_misses": self.deadline_misses,
            "journal": str(self.journal.path) if self.journal is not None else None,
            "previous_journal": self.previous,
            **self.latency.summary(),
        }
