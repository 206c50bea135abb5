"""The features node in memory: quotes and trades update the kernels' features."""

import numpy as np

from redline.feeds.clock import ReplayClock
from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE
from redline.kernels.features import FEATURE_NAMES
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness
from redline.pipeline.graph.nodes import FeaturesNode

T0 = 1_700_000_000_000_000_000


def test_features_follow_the_events_and_the_node_stamps_its_stage():
    clock = ReplayClock(T0)
    spec = gc.FeaturesSpec(in_="ticks", out="features", max_instruments=4)
    h = Harness(FeaturesNode("features", spec, clock))
    q = np.zeros(2, QUOTE_DTYPE)
    q["instrument_id"], q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = 7, 100, 102, 1, 3
    q["ts_event"] = T0 + np.arange(2)
    t = np.zeros(1, TRADE_DTYPE)
    t["instrument_id"], t["px"], t["sz"], t["aggressor"] = 7, 102, 5, 1
    h.push(q, stamp_ns=T0 - 50, feed_ns=T0 - 50)
    h.run()
    clock.advance(30)
    h.push(t, stamp_ns=T0 - 20, feed_ns=T0 - 20)
    h.end()
    h.run()
    out = h.emitted
    assert [len(m.records) for m in out] == [2, 1] and h.out_ended
    assert [m.sent_ns for m in out] == [T0, T0 + 30]  # ts_features: the node's own stamp
    assert [m.feed_ns for m in out] == [T0 - 50, T0 - 20]  # ts_feed carried through
    f = dict(zip(FEATURE_NAMES, h.node.features(7).tolist(), strict=True))
    assert f["spread_bp"] > 0 and h.node.stats()["updates"] == 3
