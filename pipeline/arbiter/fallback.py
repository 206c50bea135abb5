"""The last lines of defence when no worker answers in time.

`CpuFallback` runs the model in the arbiter's own process on its own copy of the per-instrument
feature state (it sees every event, like the workers: a third replica). It is asked only when no
valid worker answer exists `cost_ns` before the deadline, so it can still finish in budget; it
also referees a disagreement between the two workers (2-out-of-3). `cost_ns` is the larger of a
declared floor and the running p99 of its own compute times.

The safe default is the strategy's "do nothing" answer, a constant float32 vector, emitted at the
deadline tagged `Origin.DEFAULT` when neither a worker nor the fallback answered in time.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from redline.feeds.clock import Clock


class Engine(Protocol):
    """What a backend offers: per-instrument feature state plus the model (see workers/engines.py)."""

    version: int
    out_features: int

    def apply(self, event_no: int, rtype: int, record: np.ndarray) -> None:
        """Update the feature state with one event and keep its feature row for answering."""
        ...

    def answer_into(self, event_no: int, out: np.ndarray) -> None:
        """Model output for the features as of event `event_no` -> out [N] float32.
        Raises LookupError when that event's row is no longer held."""
        ...


class CpuFallback:
    """An in-process engine with a cost estimate, used by the arbiter at the deadline."""

    __slots__ = ("_clock", "_costs", "_n", "_p99", "engine", "floor_ns")

    def __init__(
        self, engine: Engine, clock: Clock, floor_ns: int = 50_000, warm: bool = True
    ) -> None:
        if floor_ns < 0:
            raise ValueError(f"CpuFallback floor_ns must be >= 0, got {floor_ns}")
        self.engine = engine
        self.floor_ns = floor_ns
        if warm and hasattr(engine, "restore"):
            from redline.pipeline.workers.engines import warm_up

            warm_up(engine)  # numba compiles on first use: not on the first real event
        self._clock = clock
        self._costs = np.zeros(256, np.int64)  # last compute times, for the running p99
        self._n = 0
        self._p99 = 0

    @property
    def version(self) -> int:
        return self.engine.version

    def version_of(self, event_no: int) -> int:
        """The model version that answers `event_no` (engines.py: after a hot swap's flip, the
        new one; engines without versions: their one)."""
        of = getattr(self.engine, "version_of", None)
        return self.engine.version if of is None else of(event_no)

    @property
    def out_features(self) -> int:
        return self.engine.out_features

    @property
    def cost_ns(self) -> int:
        """Time to reserve before a deadline so a fallback answer still makes it."""
        return max(self.floor_ns, 2 * self._p99)

    def apply(self, event_no: int, rtype: int, record: np.ndarray) -> None:
        self.engine.apply(event_no, rtype, record)

    def answer_into(self, event_no: int, out: np.ndarray) -> bool:
        """Compute into `out`; False when the event's features are gone."""
        t0 = self._clock.monotonic_ns()
        try:
            self.engine.answer_into(event_no, out)
        except LookupError:
            return False
        cost = self._clock.monotonic_ns() - t0
        self._costs[self._n % self._costs.size] = cost
        self._n += 1
        if self._n % 32 == 0:  # refresh the tail estimate now and then, not per call
            self._p99 = int(np.percentile(self._costs[: min(self._n, self._costs.size)], 99))
        return True


def safe_default(out_features: int, value: float = 0.0) -> np.ndarray:
    """The constant "no action" answer: float32 [out_features]."""
    if out_features < 1:
        raise ValueError(f"safe_default: out_features must be >= 1, got {out_features}")
    return np.full(out_features, value, np.float32)
