import asyncio
import threading
import time

import numpy as np
import pytest
import zmq

from redline.feeds import events as ev
from redline.feeds import wire
from redline.feeds.publisher import publish_batches
from redline.feeds.sequence import SeqEvent, SequenceTracker
from redline.feeds.wire import Batch
from redline.feeds.zmq_feed import ZmqFeed

HEADER_BUT_RECV = [n for n in ev.QUOTE_DTYPE.names if n not in ("ts_recv", "ts_recv_source")]


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)  # closes whatever a failed test left open


def _drain(feed, timeout_s=5.0):
    out = []
    deadline = time.monotonic() + timeout_s
    while not feed.ended and time.monotonic() < deadline:
        b = feed.recv_batch(0.1)
        if b is not None:
            out.append(b)
    assert feed.ended, "no end of stream within the timeout"
    return out


def test_inproc_pub_sub_delivers_every_record_stamped_on_arrival(ctx, records):
    quotes = records(ev.RecordType.QUOTE, 150, seed=3)
    trades = records(ev.RecordType.TRADE, 20, seed=4, source_id=2)
    batches = [Batch(ev.RecordType.QUOTE, quotes), Batch(ev.RecordType.TRADE, trades)]
    stats = {}

    def pub():
        stats["s"] = publish_batches(
            batches, "inproc://q", speed=None, context=ctx, max_batch=64, wait_timeout_s=5
        )

    t_before = time.time_ns()
    with ZmqFeed("inproc://q", context=ctx, tracker=SequenceTracker()) as feed:
        t = threading.Thread(target=pub)
        t.start()
        got = _drain(feed)
        t_after = time.time_ns()
        assert feed.stats()["sequence"]["gaps"] == 0
        assert feed.stats()["frames"] == 3 + 1
    t.join(5)
    assert [b.rtype for b in got] == [ev.RecordType.QUOTE] * 3 + [ev.RecordType.TRADE]
    assert [len(b.records) for b in got] == [64, 64, 22, 20]
    q = np.concatenate([b.records for b in got[:3]])
    np.testing.assert_array_equal(q[HEADER_BUT_RECV], quotes[HEADER_BUT_RECV])
    np.testing.assert_array_equal(got[3].records["px"], trades["px"])
    ts = np.concatenate([b.records["ts_recv"] for b in got])
    assert ((ts >= t_before) & (ts <= t_after)).all()
    assert (q["ts_recv_source"] == ev.TsSource.USER).all()
    assert stats["s"].events == 170 and stats["s"].frames == 4


def test_malformed_messages_are_counted_and_never_stop_the_feed(ctx, tmp_path, records):
    ep = f"ipc://{tmp_path}/feed"
    good = records(ev.RecordType.TRADE, 4)
    feed = ZmqFeed(ep, kind="pull", bind=True, context=ctx)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(ep)
    push.send(b"garbage!" * 4)
    push.send(wire.encode(good[:1]))
    push.send_multipart([wire.encode(good[1:2]), b"RDLN\x01", wire.encode(good[2:4])])
    push.send(wire.encode(good[:2])[:-3])  # ragged
    push.send(b"x" * (2 << 20))  # larger than the receive buffer
    push.send(wire.encode_end())
    got = _drain(feed)
    assert [b.records["seq"].tolist() for b in got] == [[0], [1], [2, 3]]
    s = feed.stats()
    assert s["malformed_by_reason"]["magic"] == 1
    assert s["malformed_by_reason"]["short"] == 1
    assert s["malformed_by_reason"]["ragged"] == 1
    assert s["malformed_by_reason"]["oversize"] == 1
    assert (s["parts"], s["frames"], s["events"], s["ends"]) == (8, 3, 4, 1)
    assert feed.recv_batch(0.0) is None  # ended: nothing more, at once
    push.close(0)
    feed.close()


def test_batches_stay_valid_after_later_receives(ctx, tmp_path, records):
    # records are views into a receive arena: later messages must never overwrite them
    ep = f"ipc://{tmp_path}/arena"
    feed = ZmqFeed(ep, kind="pull", bind=True, context=ctx, max_frame_bytes=4096, arena_bytes=16384)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(ep)
    recs = records(ev.RecordType.QUOTE, 3000)
    for i in range(0, 3000, 50):  # ~200 KB through 16 KB arenas: a dozen fresh ones
        push.send(wire.encode(recs[i : i + 50]))
    push.send(wire.encode_end())
    got = []
    deadline = time.monotonic() + 10
    while not feed.ended and time.monotonic() < deadline:  # a busy-poll loop: never blocks
        b = feed.recv_batch(0.0)
        if b is not None:
            got.append(b)
    assert feed.ended
    back = np.concatenate([b.records for b in got])
    np.testing.assert_array_equal(back["bid_px"], recs["bid_px"])
    push.close(0)
    feed.close()


def test_gap_hook_fires_through_the_feed(ctx, tmp_path, records):
    ep = f"ipc://{tmp_path}/gap"
    seen = []
    tracker = SequenceTracker(lambda kind, src, seq, exp: seen.append((kind, src, seq, exp)))
    feed = ZmqFeed(ep, kind="pull", bind=True, context=ctx, tracker=tracker)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(ep)
    recs = records(ev.RecordType.QUOTE, 10, source_id=5)
    push.send(wire.encode(recs[:3]))
    push.send(wire.encode(recs[6:]))
    push.send(wire.encode_end())
    got = _drain(feed)
    assert seen == [(SeqEvent.GAP, 5, 6, 3)]
    assert got[1].records["flags"][0] & ev.Flag.GAP_BEFORE
    assert not tracker.is_clean(5)
    push.close(0)
    feed.close()


def test_topic_filter_and_asyncio_receive(ctx, records):
    quotes = records(ev.RecordType.QUOTE, 5)
    trades = records(ev.RecordType.TRADE, 5)
    batches = [Batch(ev.RecordType.QUOTE, quotes), Batch(ev.RecordType.TRADE, trades)]

    async def main():
        topics = (wire.topic(ev.RecordType.TRADE), wire.end_topic())
        feed = ZmqFeed("inproc://topics", context=ctx, topics=topics)
        pub = threading.Thread(
            target=publish_batches,
            args=(batches, "inproc://topics"),
            kwargs={"speed": None, "context": ctx, "wait_timeout_s": 5},
        )
        pub.start()
        got = []
        while (b := await asyncio.wait_for(feed.arecv_batch(), 5)) is not None:
            got.append(b)
        pub.join(5)
        feed.close()
        return got

    got = asyncio.run(main())
    assert [b.rtype for b in got] == [ev.RecordType.TRADE]
    np.testing.assert_array_equal(got[0].records["trade_id"], trades["trade_id"])


def test_bad_arguments_are_named(ctx):
    with pytest.raises(ValueError, match="kind must be one of"):
        ZmqFeed("inproc://x", kind="dealer", context=ctx)
    with pytest.raises(ValueError, match="cannot bind 'bogus://x'"):
        ZmqFeed("bogus://x", bind=True, context=ctx)
