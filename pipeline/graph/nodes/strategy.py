"""The strategy node: answers -> decisions behind risk checks, `ts_decision` stamped."""

from __future__ import annotations

from typing import Any

from redline.pipeline.graph import config as gc
from redline.pipeline.graph.nodes.base import Node
from redline.strategies.signal_trader import SignalTrader


class StrategyNode(Node):
    """Answers -> decisions (SignalTrader); stamps `ts_decision` as it emits."""

    kind = "strategy"

    def __init__(self, name, spec: gc.StrategySpec, clock) -> None:
        super().__init__(name, spec, clock)
        self.trader = SignalTrader(spec, clock)
        self.decisions = 0

    def step(self) -> int:
        rx = self.inputs[0]
        n = 0
        if self.held_back():
            return 0
        for answers, _, _ in rx.recv():
            out = self.trader.decide(answers)
            out["ts_decision"] = now = self.clock.now_ns()
            if self.output is not None:
                self.output.send(out, stamp_ns=now)
            n += len(out)
        self.events += n
        self.decisions += n
        if rx.ended and not self.ending:
            self._end()
        return n

    def stats(self) -> dict[str, Any]:
        t = self.trader
        return {
            **super().stats(),
            "decisions": self.decisions,
            "reasons": {r.name.lower(): c for r, c in t.counts.items()},
            "positions": dict(t.position),
            "halted": sorted(t.halted),
        }
