"""The arbiter node's answers carry the quote each was asked for, whatever order they come in."""

import sys
from pathlib import Path

import numpy as np

from redline.feeds.clock import ReplayClock
from redline.feeds.events import QUOTE_DTYPE, Flag
from redline.pipeline.arbiter.arbiter import Arbiter
from redline.pipeline.arbiter.config import ArbiterConfig, BreakerConfig
from redline.pipeline.arbiter.fallback import safe_default
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness
from redline.pipeline.graph.nodes import ArbiterNode
from redline.pipeline.graph.nodes.answer_quote import ANSWER_QUOTE_DTYPE, AskedQuotes
from redline.strategies.signal_trader import ANSWER_DTYPE

sys.path.insert(0, str(Path(__file__).parents[2] / "arbiter"))
from fake_link import FakeLink, N

US = 1_000


def quotes(n: int) -> np.ndarray:
    q = np.zeros(n, QUOTE_DTYPE)
    q["source_id"] = 11
    q["seq"] = np.arange(100, 100 + n)
    q["bid_px"], q["ask_px"] = 1000 + q["seq"], 1001 + q["seq"]
    q["bid_sz"], q["ask_sz"] = 5 + np.arange(n), 7 + np.arange(n)
    q["flags"][1] = Flag.GAP_BEFORE
    return q


def test_each_answer_gets_its_own_quote_in_any_order_and_an_unknown_one_is_marked():
    asked = AskedQuotes()
    q = quotes(4)
    asked.keep(q, [True, True, False, True])  # quote 2 asked for no decision
    a = np.empty(3, ANSWER_QUOTE_DTYPE)  # the node's answer rows start uninitialised
    a["input_source_id"] = 11
    a["input_seq"] = [103, 101, 102]  # answered out of order; 102 was never asked
    asked.fill(a)
    assert a["quote_found"].tolist() == [1, 1, 0]
    assert a["quote_bid_px"].tolist() == [1103, 1101, 0]
    assert a["quote_ask_sz"].tolist() == [10, 8, 0]
    assert a["quote_flags"].tolist() == [0, Flag.GAP_BEFORE, 0]
    assert len(asked) == 1  # 100 still waits for its answer; answered ones are forgotten
    b = np.empty(1, ANSWER_QUOTE_DTYPE)
    b["input_source_id"], b["input_seq"] = 11, 103
    asked.fill(b)  # a second answer to the same question finds nothing
    assert b["quote_found"].tolist() == [0]


def test_the_answer_keeps_the_signal_traders_layout_in_front():
    for f in ANSWER_DTYPE.names:
        assert ANSWER_QUOTE_DTYPE.fields[f][:2] == ANSWER_DTYPE.fields[f][:2], f
    assert ANSWER_QUOTE_DTYPE.itemsize % 8 == 0


def _answers(q, keep: bool = True) -> np.ndarray:
    """The arbiter node's answers to the quotes `q` (two fake workers, a replay clock)."""
    clock = ReplayClock(10**12)
    links = (FakeLink("A", clock, 100 * US), FakeLink("B", clock, 150 * US))
    cfg = ArbiterConfig(budget_ns=2_000_000, breaker=BreakerConfig(heartbeat_timeout_ns=10**9))
    arb = Arbiter(links, cfg, clock, safe_default(N))
    while not all(b.serving for b in arb.breakers):
        clock.advance(10 * US)
        arb.poll()
    spec = gc.ArbiterSpec(in_="ticks", out="answers")
    h = Harness(ArbiterNode("arbiter", spec, clock, arb, keep_asked_quotes=keep))
    h.push(q, stamp_ns=clock.now_ns(), feed_ns=clock.now_ns())
    h.end()
    while not h.node.done:
        h.run()
        clock.advance(10 * US)
    return h.records()


def test_without_a_venue_downstream_no_quote_is_kept_and_the_fields_are_zero():
    q = quotes(5)
    q["instrument_id"] = 1
    out = _answers(q, keep=False)
    assert len(out) == 5 and out["bid_px"].tolist() == [1104] * 5
    assert (out["quote_found"] == 0).all() and (out["quote_bid_px"] == 0).all()


def test_the_arbiter_node_answers_with_the_quote_asked_not_the_latest():
    q = quotes(5)
    q["instrument_id"] = 1
    out = _answers(q)
    assert out.dtype == ANSWER_QUOTE_DTYPE and (out["quote_found"] == 1).all()
    assert out["bid_px"].tolist() == [1104] * 5  # the latest quote, as the signal trader reads
    assert out["quote_bid_px"].tolist() == q["bid_px"].tolist()  # each its own asked quote
    assert out["quote_bid_sz"].tolist() == q["bid_sz"].tolist()
    assert out["quote_flags"].tolist() == q["flags"].tolist()
