import asyncio
import threading
import time

import numpy as np
import pytest
import zmq

from redline.feeds import events as ev
from redline.feeds.clock import ReplayClock
from redline.feeds.events import Batch
from redline.feeds.live.publisher import publish_batches
from redline.feeds.live.zmq_feed import ZmqFeed
from redline.feeds.sequence import SeqEvent, SequenceTracker
from redline.feeds.wire import frames as wire

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
    kinds = [b.rtype for b in got]
    assert kinds == sorted(kinds) and set(kinds) == {ev.RecordType.QUOTE, ev.RecordType.TRADE}
    q = np.concatenate([b.records for b in got if b.rtype == ev.RecordType.QUOTE])
    np.testing.assert_array_equal(q[HEADER_BUT_RECV], quotes[HEADER_BUT_RECV])
    tr = np.concatenate([b.records for b in got if b.rtype == ev.RecordType.TRADE])
    np.testing.assert_array_equal(tr["px"], trades["px"])
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
    assert np.concatenate([b.records["seq"] for b in got]).tolist() == [0, 1, 2, 3]
    s = feed.stats()
    assert s["malformed_by_reason"]["magic"] == 1
    assert s["malformed_by_reason"]["short"] == 1
    assert s["malformed_by_reason"]["ragged"] == 1
    assert s["malformed_by_reason"]["oversize"] == 1
    assert (s["parts"], s["frames"], s["events"], s["ends"]) == (8, 3, 4, 1)
    assert feed.recv_batch(0.0) is None  # ended: nothing more, at once
    push.close(0)
    feed.close()


def _push_all(ctx, ep, frames):
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDHWM, 0)
    push.connect(ep)
    for f in frames:
        push.send(f)
    return push


def test_waiting_one_record_frames_come_out_as_one_batch_per_type_run(ctx, records):
    quotes = records(ev.RecordType.QUOTE, 40, seed=1)
    trades = records(ev.RecordType.TRADE, 3, seed=2)
    feed = ZmqFeed("inproc://runs", kind="pull", bind=True, context=ctx, max_frames=32)
    frames = [wire.encode(quotes[i : i + 1]) for i in range(30)]
    frames += [wire.encode(trades[i : i + 1]) for i in range(3)]
    frames += [wire.encode(quotes[i : i + 1]) for i in range(30, 40)] + [wire.encode_end()]
    t0 = time.time_ns()
    push = _push_all(ctx, "inproc://runs", frames)
    time.sleep(0.05)  # all queued: the first receive takes max_frames of them
    got = _drain(feed)
    # 32 frames per receive: 30 quotes + 2 trades, then 1 trade + 10 quotes + END
    assert [(b.rtype, len(b.records)) for b in got] == [
        (ev.RecordType.QUOTE, 30),
        (ev.RecordType.TRADE, 2),
        (ev.RecordType.TRADE, 1),
        (ev.RecordType.QUOTE, 10),
    ]
    back = np.concatenate([got[0].records, got[3].records])
    np.testing.assert_array_equal(back[HEADER_BUT_RECV], quotes[HEADER_BUT_RECV])
    stamps = np.concatenate([b.records["ts_recv"] for b in got])
    assert (np.diff(stamps) >= 0).all() and stamps[0] >= t0  # each stamped as it was taken
    assert all(b.records.flags.writeable and b.records.flags.c_contiguous for b in got)
    s = feed.stats()
    assert (s["parts"], s["frames"], s["events"], s["ends"]) == (44, 43, 43, 1)
    push.close(0)
    feed.close()


def test_a_replay_clock_stamps_every_record_with_its_time(ctx, records):
    clock = ReplayClock(1_000)
    feed = ZmqFeed("inproc://replay", kind="pull", bind=True, context=ctx, clock=clock)
    quotes = records(ev.RecordType.QUOTE, 5)
    push = _push_all(ctx, "inproc://replay", [wire.encode(quotes[i : i + 1]) for i in range(5)])
    got = []
    deadline = time.monotonic() + 5
    while sum(map(len, (b.records for b in got))) < 5 and time.monotonic() < deadline:
        if (b := feed.recv_batch(0.1)) is not None:
            got.append(b)
    assert np.concatenate([b.records["ts_recv"] for b in got]).tolist() == [1_000] * 5
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
    back = np.concatenate([b.records for b in got])  # one batch or two: both frames are quotes
    assert back["seq"].tolist() == [0, 1, 2, 6, 7, 8, 9]
    assert [bool(f & ev.Flag.GAP_BEFORE) for f in back["flags"]] == [False] * 3 + [True] + [
        False
    ] * 3
    assert not tracker.is_clean(5)
    push.close(0)
    feed.close()


def test_merged_runs_tell_the_tracker_what_one_record_at_a_time_would(ctx, records):
    # Frames queued together merge into one batch, summarised by the compiled loop for
    # the tracker's fast path: gaps, duplicates, disorder and a second source between or
    # inside frames must come out exactly as from a tracker fed the same records directly.
    template = records(ev.RecordType.QUOTE, 4)
    # Per case, frames of (seqs, sources) from a source of its own, so each starts clean;
    # "x" is another source. Each case follows a burst of one frame [0], after which the
    # source is known and a run starting at 1 may take the fast path.
    cases = [
        [([1], 0), ([2, 3], 0), ([4], 0)],  # clean: the fast path
        [([1], 0), ([3], 0), ([4, 5], 0)],  # a gap between frames
        [([0], 0), ([1], 0)],  # a duplicate starts the run
        [([1], 0), ([2, 4, 3, 5], 0), ([6], 0)],  # disorder inside a frame
        [([1], 0), ([2], "x"), ([3], 0)],  # in sequence, but another source between
        [([1], 0), ([2, 3], [0, "x"])],  # ... and inside a frame
    ]
    bursts = []  # each is queued whole, then taken in one receive
    for k, case in enumerate(cases):
        own, other = 10 + k, 50 + k
        bursts.append([([0], own)])
        bursts.append([(q, [other if x == "x" else own for x in np.broadcast_to(w, len(q))])
                       for q, w in case])  # fmt: skip
    seen: list = []
    feed = ZmqFeed(
        "inproc://summary", kind="pull", bind=True, context=ctx,
        tracker=SequenceTracker(lambda *e: seen.append(e), reorder_window=4),
    )  # fmt: skip
    push = _push_all(ctx, "inproc://summary", [])
    want: list = []
    direct = SequenceTracker(lambda *e: want.append(e), reorder_window=4)
    got, sent = [], []
    for burst in bursts:
        for seq, src in burst:
            r = template[: len(seq)].copy()
            r["seq"], r["source_id"] = seq, src
            push.send(wire.encode(r))
            direct.observe(r)
            sent.append(r)
        time.sleep(0.02)  # all queued: one receive takes the burst as one run
        got.append(feed.recv_batch(5.0))
    assert [len(b.records) for b in got] == [sum(len(q) for q, _ in b) for b in bursts]
    assert seen == want and len(want) >= 4  # the gaps, the duplicate, the disorder...
    assert feed.tracker.totals() == direct.totals()
    assert {k: v.expected for k, v in feed.tracker.sources.items()} == {
        k: v.expected for k, v in direct.sources.items()
    }
    back = np.concatenate([b.records for b in got])
    assert back["seq"].tolist() == np.concatenate(sent)["seq"].tolist()
    assert back["flags"].tolist() == np.concatenate(sent)["flags"].tolist()  # GAP_BEFORE marks
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
    with pytest.raises(ValueError, match="max_frames must be >= 1"):
        ZmqFeed("inproc://x", context=ctx, max_frames=0)
    closed = ZmqFeed("inproc://closed", kind="pull", bind=True, context=ctx)
    closed.close()
    with pytest.raises(zmq.ZMQError, match="after close"):  # never a dangling socket handle
        closed.recv_batch(0.0)
