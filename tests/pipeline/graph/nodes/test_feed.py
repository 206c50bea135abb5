"""The feed node in memory: batches from a MemorySource, through the node, into a list."""

import numpy as np

from redline.feeds.clock import ReplayClock
from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, Flag
from redline.feeds.sequence import SequenceTracker
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness, MemorySource
from redline.pipeline.graph.nodes import FeedNode

T0 = 1_700_000_000_000_000_000


def quotes(seqs, source=11):
    q = np.zeros(len(seqs), QUOTE_DTYPE)
    q["seq"] = seqs
    q["source_id"] = source
    q["instrument_id"] = 1
    return q


def test_feed_forwards_in_order_stamps_its_stages_and_counts_a_gap_as_an_ingress_drop():
    clock = ReplayClock(T0)
    trades = np.zeros(2, TRADE_DTYPE)
    trades["seq"], trades["source_id"] = [0, 1], 12
    # seq 4 never arrives on source 11: one record lost before the feed
    tracker = SequenceTracker()
    source = MemorySource([quotes([0, 1, 2]), trades, quotes([3, 5, 6])], clock, tracker)
    spec = gc.FeedSpec(source="tcp://127.0.0.1:1", out="ticks")
    h = Harness(FeedNode("feed", spec, clock, source, tracker))
    out = h.run()
    # one edge message per run of one record type (the node coalesces batches)
    assert [m.records.dtype for m in out] == [QUOTE_DTYPE, TRADE_DTYPE, QUOTE_DTYPE]
    got = np.concatenate([out[0].records, out[2].records])
    assert got["seq"].tolist() == [0, 1, 2, 3, 5, 6]
    assert (got["ts_recv"] == T0).all()  # stamped by the source on arrival
    assert all(m.sent_ns == m.feed_ns == T0 for m in out)  # ts_feed: the node's own stamp
    assert got["flags"][got["seq"] == 5][0] & Flag.GAP_BEFORE  # the gap is flagged downstream
    assert h.node.ingress_drops == 1 and h.node.events == 8
    assert h.node.done and h.out_ended  # the source ended: end of stream went downstream


def test_stop_intake_ends_the_stream_without_taking_more():
    clock = ReplayClock(T0)
    source = MemorySource([quotes([0]), quotes([1])], clock)
    spec = gc.FeedSpec(source="tcp://127.0.0.1:1", out="ticks")
    h = Harness(FeedNode("feed", spec, clock, source, SequenceTracker()))
    h.node.stop_intake()  # SIGTERM before anything was read
    assert h.run() == [] and h.out_ended and source.handed == 0
