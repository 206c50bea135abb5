"""The strategy node in memory: answers in, decisions out, `ts_decision` from the clock."""

import numpy as np

from redline.feeds.clock import ReplayClock
from redline.feeds.events import Origin, Side
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness
from redline.pipeline.graph.nodes import StrategyNode
from redline.strategies.signal_trader import ANSWER_DTYPE

T0 = 1_700_000_000_000_000_000


def answers(scores, origin=Origin.WORKER_A):
    a = np.zeros(len(scores), ANSWER_DTYPE)
    a["score"] = scores
    a["origin"] = origin
    a["instrument_id"] = 3
    a["ts_recv"] = T0
    a["bid_px"], a["ask_px"] = 100, 101
    return a


def test_decisions_follow_the_answers_in_order_behind_the_position_limit():
    clock = ReplayClock(T0)
    spec = gc.StrategySpec(in_="answers", out="decisions", max_position=2, threshold=0.5)
    h = Harness(StrategyNode("strategy", spec, clock))
    h.push(answers([0.9, 0.1, 0.9, 0.9, -0.9]))
    assert len(h.run()) == 1
    clock.advance(1_000)
    h.push(answers([0.9], origin=Origin.DEFAULT))  # the safe default never adds risk
    h.end()
    assert len(h.run()) == 1 and h.out_ended
    out = h.records()
    assert out["side"].tolist() == [Side.BID, Side.NONE, Side.BID, Side.NONE, Side.ASK, Side.NONE]
    assert out["px"].tolist() == [101, 0, 101, 0, 100, 0]  # buys at the ask, sells at the bid
    assert out["ts_decision"].tolist() == [T0] * 5 + [T0 + 1_000]
    assert h.node.stats()["reasons"] == {
        "order": 3, "no_signal": 1, "halted": 0, "stale": 0, "position_limit": 1,
        "rate_limit": 0, "default": 1, "flatten": 0, "late": 0,
    }  # fmt: skip
