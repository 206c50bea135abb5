"""The arbiter node in memory: quotes in, answers out, through a real Arbiter whose two
workers are in-memory fakes on the test clock (tests/pipeline/arbiter/fake_link.py)."""

import sys
from pathlib import Path

import numpy as np

from redline.feeds.clock import ReplayClock
from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, Origin
from redline.pipeline.arbiter.arbiter import Arbiter
from redline.pipeline.arbiter.config import ArbiterConfig, BreakerConfig
from redline.pipeline.arbiter.fallback import safe_default
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness
from redline.pipeline.graph.nodes import ArbiterNode

sys.path.insert(0, str(Path(__file__).parents[2] / "arbiter"))
from fake_link import FakeLink, N

US = 1_000


def ready_arbiter(clock):
    links = (FakeLink("A", clock, 100 * US), FakeLink("B", clock, 150 * US))
    cfg = ArbiterConfig(budget_ns=2_000_000, breaker=BreakerConfig(heartbeat_timeout_ns=10**9))
    arb = Arbiter(links, cfg, clock, safe_default(N))
    while not all(b.serving for b in arb.breakers):
        clock.advance(10 * US)
        arb.poll()
    return arb


def quotes(ids, seq0=0):
    q = np.zeros(len(ids), QUOTE_DTYPE)
    q["instrument_id"] = ids
    q["seq"] = np.arange(seq0, seq0 + len(ids))
    q["bid_px"], q["ask_px"] = 100 + q["seq"], 101 + q["seq"]
    return q


def test_every_quote_of_its_instruments_gets_one_answer_priced_at_the_latest_quote():
    clock = ReplayClock(10**12)
    spec = gc.ArbiterSpec(in_="ticks", out="answers", instruments=(1,))
    h = Harness(ArbiterNode("arbiter", spec, clock, ready_arbiter(clock)))
    t0 = clock.now_ns()
    trades = np.zeros(3, TRADE_DTYPE)
    trades["instrument_id"] = 1
    h.push(quotes([1, 2, 1, 1]), stamp_ns=t0, feed_ns=t0)  # instrument 2 is not ours
    h.push(trades, stamp_ns=t0, feed_ns=t0)  # state only: no decision asked
    h.push(quotes([1, 1], seq0=4), stamp_ns=t0, feed_ns=t0)
    h.end()
    while not h.node.done:
        h.run()
        clock.advance(10 * US)  # the fake workers answer when the clock says so
    out = h.records()
    assert h.out_ended and h.node.asked == h.node.answered == 5 and h.node.filtered == 1
    assert out["input_seq"].tolist() == [0, 2, 3, 4, 5]  # one answer each, in order
    assert (out["origin"] == Origin.WORKER_A).all()  # A answers in 100 µs, B in 150
    # an order is priced at the touch when it is decided: all five came after the last quote
    assert out["bid_px"].tolist() == [105] * 5 and out["ask_px"].tolist() == [106] * 5
    assert (out["ts_answer"] - out["ts_request"] >= 100 * US).all()
    assert (out["ts_feed"] == t0).all() and np.isfinite(out["score"]).all()
    assert h.node.stats()["arbiter"]["events"] == 8  # every event of instrument 1 went out


def test_instruments_past_the_capacity_are_counted_and_skipped_not_the_end_of_the_run():
    clock = ReplayClock(10**12)
    workers = (gc.WorkerSpec(name="a", max_instruments=2), gc.WorkerSpec(name="b"))
    spec = gc.ArbiterSpec(in_="ticks", out="answers", workers=workers)  # all instruments
    h = Harness(ArbiterNode("arbiter", spec, clock, ready_arbiter(clock)))
    h.push(quotes([1, 2, 3, 3, 1]))  # a third instrument: no room in worker a's state
    h.push(quotes([4, 2], seq0=5))
    h.end()
    while not h.node.done:
        h.run()
        clock.advance(10 * US)
    out = h.records()
    assert out["instrument_id"].tolist() == [1, 2, 1, 2]  # the rest was decided normally
    assert h.node.instrument_overflow == 3 and h.node.stats()["instrument_overflow"] == 3
    assert h.node.stats()["arbiter"]["events"] == 4  # the overflow never reached a worker


def test_records_no_node_decides_on_are_counted_and_said_once(capsys):
    # Sensor recordings published into the demo graph: 59,904 events in, 0 decisions and
    # not a word. Their instrument ids are not the graph's either: said all the same.
    from redline.feeds.events import SENSOR_DTYPE

    clock = ReplayClock(10**12)
    spec = gc.ArbiterSpec(in_="ticks", out="answers", instruments=(1,))
    h = Harness(ArbiterNode("arbiter", spec, clock, ready_arbiter(clock)))
    t0 = clock.now_ns()
    sensors = np.zeros(5, SENSOR_DTYPE)
    sensors["instrument_id"] = 7
    for _ in range(3):
        h.push(sensors, stamp_ns=t0, feed_ns=t0)
    h.end()
    while not h.node.done:
        h.run()
        clock.advance(10 * US)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SENSOR records arrive" in err[0]
    assert "decides only on QUOTE records (instruments [1])" in err[0]
    stats = h.node.stats()
    assert stats["undecided"] == {"SENSOR": 15} and stats["asked"] == 0
    assert stats["warnings"] == [err[0].removeprefix("redline: arbiter: ")]
