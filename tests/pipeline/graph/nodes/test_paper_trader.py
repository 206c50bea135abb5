"""The strategy node running a registered strategy against the simulated venue, in memory:
answers carrying their quotes in, decisions out, orders as the backtest makes them."""

import numpy as np
import pyarrow.parquet as pq

from redline.feeds.clock import ReplayClock
from redline.feeds.event_schema import from_arrow
from redline.feeds.events import Origin, RecordType, Side
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness
from redline.pipeline.graph.nodes import StrategyNode
from redline.pipeline.graph.nodes.answer_quote import ANSWER_QUOTE_DTYPE
from redline.replay_data import DIR
from redline.strategies import ema_cross
from redline.venue.backtest import Backtest
from redline.venue.latency import Latency
from redline.venue.orders import Orders

LATENCY = "decision=50,entry=200,ack=100"


def recorded_quotes(n: int) -> np.ndarray:
    table = pq.read_table(DIR / "market_quotes.parquet").slice(0, n)
    return from_arrow(table, RecordType.QUOTE)


def answers_for(quotes: np.ndarray, scores=None, origin=Origin.WORKER_A) -> np.ndarray:
    """What the arbiter node sends for these quotes: each answer carries its asked quote."""
    a = np.zeros(len(quotes), ANSWER_QUOTE_DTYPE)
    for f in ("ts_event", "ts_recv", "instrument_id"):
        a[f] = quotes[f]
    a["input_seq"], a["input_source_id"] = quotes["seq"], quotes["source_id"]
    for f in ("bid_px", "ask_px", "bid_sz", "ask_sz", "flags"):
        a[f"quote_{f}"] = quotes[f]
    a["quote_found"] = 1
    a["origin"] = origin
    a["score"] = 0.0 if scores is None else scores
    return a


def node(clock, **kw) -> Harness:
    spec = gc.StrategySpec(in_="answers", out="decisions", **kw)
    return Harness(StrategyNode("strategy", spec, clock))


def test_ema_cross_in_the_node_orders_and_fills_as_the_backtest_on_the_same_quotes():
    quotes = recorded_quotes(3000)
    ids = sorted(set(quotes["instrument_id"].tolist()))
    clock = ReplayClock(int(quotes["ts_recv"][-1]))
    h = node(clock, strategy="ema_cross", params={"every": 20}, instruments=tuple(ids),
             latency=LATENCY, orders="kind=limit")  # fmt: skip
    answers = answers_for(quotes)
    for s, e in ((0, 1), (1, 8), (8, 517), (517, 3000)):  # batching must not matter
        h.push(answers[s:e])
        h.run()
    h.end()
    h.run()
    ref = Backtest(ema_cross, ema_cross.Params(every=20), Latency.parse(LATENCY).legs(), ids,
                   orders=Orders(kind="limit"))  # fmt: skip
    ref.feed(quotes)
    want = ref.finish()
    got = h.node.trader.finish()
    assert want.figures["orders"] > 10 and want.figures["cancels"] > 0
    assert got.executions.tobytes() == want.executions.tobytes()
    stats = h.node.stats()
    assert stats["journal_sha256"] == want.figures["journal_sha256"]
    assert (stats["orders"], stats["fills"], stats["strategy_steps"]) == (
        want.figures["orders"], want.figures["fills"], 3000,
    )  # fmt: skip
    # one decision per answer; those that sent an order show its first order's side and limit
    out = h.records()
    assert len(out) == 3000 and h.out_ended
    ex = want.executions
    first = {}
    for row in ex:  # the first order of each (instrument, decision time)
        first.setdefault((int(row["instrument_id"]), int(row["ts_decision"])), row)
    acted = out[out["side"] != Side.NONE]
    assert len(acted) == len(first)
    for d in acted:
        row = first[(int(d["instrument_id"]), int(d["ts_recv"]) + 50_000)]
        assert d["side"] == (Side.BID if row["qty_ordered"] > 0 else Side.ASK)
        assert (d["qty"], d["px"]) == (abs(row["qty_ordered"]), row["limit_px"])


def test_model_signal_steps_on_each_answers_score_and_a_default_keeps_its_side():
    quotes = recorded_quotes(400)
    quotes = quotes[quotes["instrument_id"] == quotes["instrument_id"][0]][:6]
    inst = int(quotes["instrument_id"][0])
    clock = ReplayClock(int(quotes["ts_recv"][-1]))
    h = node(clock, strategy="model_signal", params={"enter": 1.0, "exit": 0.5},
             instruments=(inst,))  # fmt: skip
    a = answers_for(quotes, scores=[2.0, 0.7, 0.1, -2.0, -2.0, -2.0])
    a["origin"][3] = Origin.DEFAULT  # no worker in time: NaN, the side it had (flat) stays
    h.push(a)
    h.end()
    h.run()
    out = h.records()
    # 2.0: long; 0.7: inside the band, keep; 0.1: flat; default: keep flat; -2.0: short, stay
    want = [Side.BID, Side.NONE, Side.ASK, Side.NONE, Side.ASK, Side.NONE]
    assert out["side"].tolist() == want
    assert out["px"].tolist()[0] == quotes["ask_px"][0]  # a market buy shows the touch
    stats = h.node.stats()
    assert stats["position"] == {inst: -1} and stats["orders"] == stats["fills"] == 3


def test_answers_without_their_quote_or_of_other_instruments_are_counted_not_stepped():
    quotes = recorded_quotes(300)
    ids = sorted(set(quotes["instrument_id"].tolist()))
    clock = ReplayClock(int(quotes["ts_recv"][-1]))
    h = node(clock, strategy="ema_cross", params={"every": 1}, instruments=tuple(ids[:-1]))
    a = answers_for(quotes)
    a["quote_found"][:3] = 0  # the arbiter node never saw these quotes asked
    h.push(a)
    h.end()
    h.run()
    stats = h.node.stats()
    others = int((quotes["instrument_id"][3:] == ids[-1]).sum())
    assert others > 0
    assert stats["missing_quote"] == 3 and stats["other_instruments"] == others
    assert stats["strategy_steps"] == 300 - 3 - others
    assert len(h.records()) == 300  # every answer still gets its decision, journaled


def test_the_default_node_is_still_the_signal_trader():
    h = node(ReplayClock(0))
    assert type(h.node.trader).__name__ == "SignalTrader"
