"""The strategy node: answers -> decisions behind risk checks, `ts_decision` stamped."""

from __future__ import annotations

from typing import Any

from redline.pipeline.graph import config as gc
from redline.pipeline.graph.node_specs import SIGNAL_TRADER
from redline.pipeline.graph.nodes.base import Node
from redline.pipeline.graph.nodes.paper_trader import PaperTrader
from redline.strategies.signal_trader import SignalTrader


class StrategyNode(Node):
    """Answers -> decisions; stamps `ts_decision` as it emits. The signal trader by default;
    a registered strategy (`strategy = "ema_cross"`, ...) trades the simulated L1 venue
    (nodes/paper_trader.py): `trader` is then a PaperTrader."""

    kind = "strategy"

    def __init__(self, name, spec: gc.StrategySpec, clock) -> None:
        super().__init__(name, spec, clock)
        self.trader: SignalTrader | PaperTrader = (
            SignalTrader(spec, clock) if spec.strategy == SIGNAL_TRADER
            else PaperTrader.from_spec(spec)
        )  # fmt: skip
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
        if isinstance(t, PaperTrader):
            return {**super().stats(), "decisions": self.decisions, "strategy": self.spec.strategy,
                    **t.stats()}  # fmt: skip
        return {
            **super().stats(),
            "decisions": self.decisions,
            "reasons": {r.name.lower(): c for r, c in t.counts.items()},
            "positions": dict(t.position),
            "halted": sorted(t.halted),
        }
