import threading
import time

import numpy as np
import pytest
import zmq

from redline.feeds import events as ev
from redline.feeds.events import Batch
from redline.feeds.live.pacer import Pacer
from redline.feeds.live.publisher import publish, publish_batches
from redline.feeds.wire import frames as wire


class StepClock:
    """Moves `step` ns on every read; `sleep` jumps ahead by the time asked plus `overshoot`."""

    def __init__(self, step=1_000, overshoot=0):
        self.t, self.step, self.overshoot, self.sleeps = 0, step, overshoot, []

    def now_ns(self):
        return self.monotonic_ns()

    def monotonic_ns(self):
        self.t += self.step
        return self.t

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += int(s * 1e9) + self.overshoot


def test_pacer_sleeps_until_the_spin_window_then_spins_to_the_deadline():
    clock = StepClock(step=1_000, overshoot=50_000)
    pacer = Pacer(clock, sleep=clock.sleep, spin_ns=200_000)
    late = pacer.wait_until(2_000_000)
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] == pytest.approx((2_000_000 - 1_000 - 200_000) / 1e9)
    assert 0 <= late < 1_000  # spinning lands within one clock step of the deadline
    assert pacer.wait_until(clock.t - 5_000) >= 0  # already due: no sleep, no wait
    assert len(clock.sleeps) == 1


def _frames_from(pull):
    out = []
    dec = wire.Decoder()
    while True:
        msg = dec.decode(pull.recv())
        if msg is wire.END_OF_STREAM:
            return out
        out.append(msg.records)


@pytest.mark.parametrize("speed", [1.0, 10.0])
def test_publisher_schedules_by_ts_event_and_batches_what_is_already_due(tmp_path, records, speed):
    recs = records(ev.RecordType.TRADE, 6)
    offsets = np.array([0, 0, 0, 1_000_000, 1_000_000, 5_000_000])
    recs["ts_event"] = recs["ts_event"][0] + offsets
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVTIMEO, 5000)
    ep = f"ipc://{tmp_path}/pub"
    pull.bind(ep)
    clock = StepClock(step=1_000)
    stats = publish_batches(
        [Batch(ev.RecordType.TRADE, recs)],
        ep,
        speed=speed,
        socket="push",
        bind=False,
        context=ctx,
        clock=clock,
        spin_ns=10**12,  # never sleep: the fake clock only moves when read
    )
    frames = _frames_from(pull)
    ctx.destroy(0)
    assert [len(f) for f in frames] == [3, 2, 1]
    np.testing.assert_array_equal(np.concatenate(frames), recs)
    # the whole replay took the recorded span divided by the speed
    assert clock.t >= 5_000_000 / speed
    assert (stats.events, stats.frames) == (6, 3)
    assert 0 <= stats.pacing_error_ns["p50"] <= 5_000  # a few fake-clock reads
    assert stats.pacing_error_ns["max"] < 10_000


def test_max_speed_fills_frames_and_reports_no_pacing(tmp_path, records):
    recs = records(ev.RecordType.QUOTE, 130)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVTIMEO, 5000)
    ep = f"ipc://{tmp_path}/max"
    pull.bind(ep)
    stats = publish_batches(
        [Batch(ev.RecordType.QUOTE, recs)], ep, speed=None, socket="push", bind=False, context=ctx
    )
    frames = _frames_from(pull)
    ctx.destroy(0)
    assert [len(f) for f in frames] == [64, 64, 2]
    assert stats.pacing_error_ns is None


@pytest.mark.parametrize("reader_closes", [True, False])
def test_a_reader_behind_its_high_water_mark_still_gets_the_tail_and_end(
    tmp_path, records, reader_closes
):
    # libzmq drops what is in flight when a PUSH closes on a reader whose queue is full
    # (libzmq#4660, ipc): the publisher must wait for the reader before it closes.
    recs = records(ev.RecordType.QUOTE, 3000)
    recs["seq"] = np.arange(3000)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVHWM, 8)  # a bounded ingress, as a `block` graph edge uses
    pull.setsockopt(zmq.RCVTIMEO, 5000)
    ep = f"ipc://{tmp_path}/bounded"
    pull.bind(ep)
    done = []
    sender = threading.Thread(
        target=lambda: done.append(
            publish_batches(
                [Batch(ev.RecordType.QUOTE, recs)], ep, speed=None, socket="push",
                bind=False, max_batch=1, sndhwm=8, context=ctx,
            )
        )
    )  # fmt: skip
    sender.start()
    time.sleep(0.5)  # the reader falls behind: both queues fill, the sender blocks
    frames, dec = [], wire.Decoder()
    while (msg := dec.decode(pull.recv())) is not wire.END_OF_STREAM:  # the bug dropped END
        frames.append(msg.records)
        if len(frames) % 100 == 0:
            time.sleep(0.002)  # and stays behind to the end, with the kernel buffer full
    if reader_closes:  # the publisher returns once it has, else once it has read all
        pull.close(0)
    sender.join(3)
    ctx.destroy(0)
    assert done and done[0].events == 3000 and done[0].seconds < 3  # not the 5 s linger
    assert np.concatenate(frames)["seq"].tolist() == list(range(3000))


def test_bad_publish_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="speed must be > 0"):
        publish_batches([], "inproc://x", speed=0)
    with pytest.raises(ValueError, match="socket must be 'pub' or 'push'"):
        publish_batches([], "inproc://x", socket="dealer")
    with pytest.raises(FileNotFoundError, match="no recording at"):
        publish([tmp_path / "missing.parquet"], "inproc://x")
    with pytest.raises(ValueError, match="expected udp://HOST:PORT"):
        publish_batches([], "udp://nohost")


def test_publisher_gives_up_waiting_for_subscribers_with_a_clear_error(tmp_path):
    with pytest.raises(TimeoutError, match="0 of 1 subscribers"):
        publish_batches([], f"ipc://{tmp_path}/lonely", wait_timeout_s=0.05)


def test_push_without_a_peer_times_out_with_a_clear_error(tmp_path, records):
    batch = Batch(ev.RecordType.QUOTE, records(ev.RecordType.QUOTE, 3))
    with pytest.raises(TimeoutError, match="no PULL peer took a frame"):
        publish_batches(
            [batch], f"ipc://{tmp_path}/nobody", socket="push", speed=None, wait_timeout_s=0.05
        )


def test_a_connecting_push_with_nobody_listening_fails_instead_of_reporting_sent(tmp_path, records):
    # Without IMMEDIATE a connecting PUSH queued every frame for a peer that never came
    # and returned as if all were sent.
    batch = Batch(ev.RecordType.QUOTE, records(ev.RecordType.QUOTE, 3))
    with pytest.raises(TimeoutError, match="no PULL peer took a frame"):
        publish_batches(
            [batch], f"ipc://{tmp_path}/nobody", socket="push", bind=False, speed=None,
            wait_timeout_s=0.2,
        )  # fmt: skip


def test_a_pub_nobody_subscribed_to_says_nothing_was_delivered(tmp_path, records):
    batch = Batch(ev.RecordType.QUOTE, records(ev.RecordType.QUOTE, 3))
    stats = publish_batches([batch], f"ipc://{tmp_path}/pub", speed=None, wait_subscribers=0)
    assert stats.events == 3 and stats.readers == 0
    assert "no reader connected" in stats.undelivered


def _pull(ctx, ep, rcvhwm):
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVHWM, rcvhwm)
    pull.setsockopt(zmq.RCVTIMEO, 5000)
    pull.bind(ep)
    return pull


def test_a_reader_that_stops_reading_is_reported_after_the_linger_without_progress(
    tmp_path, records
):
    # Before, the publisher closed after a fixed 5 s and reported success.
    recs = records(ev.RecordType.TRADE, 3000)  # fits the buffers: every send succeeds
    ctx = zmq.Context()
    ep = f"ipc://{tmp_path}/stuck"
    pull = _pull(ctx, ep, rcvhwm=1)  # connected, never read
    t0 = time.monotonic()
    stats = publish_batches(
        [Batch(ev.RecordType.TRADE, recs)], ep, speed=None, socket="push", bind=False,
        context=ctx, linger_s=0.3,
    )  # fmt: skip
    waited = time.monotonic() - t0
    pull.close(0)
    ctx.destroy(0)
    assert stats.readers == 1
    assert "stopped reading with" in stats.undelivered and "bytes unread" in stats.undelivered
    assert waited < 5  # the linger without progress, not a fixed long wait


def test_a_slow_reader_gets_everything_however_long_it_takes_past_the_linger(tmp_path, records):
    # `--speed max` into a slower reader: the end waits while the reader makes progress
    # (it lost the tail after a fixed 5 s before: 858,240 of 1M quotes arrived).
    n = 40_000
    recs = records(ev.RecordType.TRADE, n)
    recs["seq"] = np.arange(n)
    ctx = zmq.Context()
    ep = f"ipc://{tmp_path}/slow"
    pull = _pull(ctx, ep, rcvhwm=4)
    got, dec = [], wire.Decoder()

    def read_slowly():
        while (msg := dec.decode(pull.recv())) is not wire.END_OF_STREAM:
            got.append(msg.records["seq"])
            time.sleep(0.002)  # ~625 frames: ~1.3 s of reading, 4x the linger below

    reader = threading.Thread(target=read_slowly)
    reader.start()
    stats = publish_batches(
        [Batch(ev.RecordType.TRADE, recs)], ep, speed=None, socket="push", bind=False,
        context=ctx, linger_s=0.3,
    )  # fmt: skip
    reader.join(30)
    ctx.destroy(0)
    assert stats.undelivered is None and stats.readers == 1
    assert np.concatenate(got).tolist() == list(range(n))  # every record, then END
