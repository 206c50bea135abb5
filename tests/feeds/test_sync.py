"""Sensor alignment on hand-made streams: the exact sets, the slop's edges, stale and missing
inputs, and the same output whatever the batching."""

import numpy as np
import pytest

from redline.feeds import events as ev
from redline.feeds.sync import ApproximateSync, LatestSync

MS = 1_000_000


def stream(sensor_id: int, ts_ms: list[float], recv_delay_ms: float = 0.0) -> np.ndarray:
    recs = ev.empty(ev.RecordType.SENSOR, len(ts_ms))
    recs["sensor_id"] = sensor_id
    recs["ts_event"] = np.round(np.asarray(ts_ms) * MS).astype(np.int64)
    recs["ts_recv"] = recs["ts_event"] + int(recv_delay_ms * MS)
    recs["frame_id"] = np.arange(len(ts_ms))
    recs["values"][:, 0] = np.asarray(ts_ms, np.float32)  # a value to follow through
    return recs


def arrival(*streams: np.ndarray) -> np.ndarray:
    recs = np.concatenate(streams)
    return recs[np.argsort(recs["ts_recv"], kind="stable")]


def sets_ms(frames) -> list[tuple[float, ...]]:
    return [tuple(row) for row in (frames.records["ts_event"] / MS).tolist()]


def run_all(sync: ApproximateSync, recs: np.ndarray, chunks: int) -> list[tuple[float, ...]]:
    out = []
    for part in np.array_split(recs, chunks):
        out += sets_ms(sync.feed(part))
    return out + sets_ms(sync.flush())


def test_approximate_sets_by_hand():
    # radar every 50 ms, camera every 33 ms late by 40 ms on the wire. By hand: each radar
    # record pairs with the camera record nearest in source time (50: 66 is 16 ms off, 33 is 17;
    # 150: 165 is 15 off, 132 is 18), and the camera records between (33, 132) are left over.
    radar = stream(1, [0, 50, 100, 150])
    camera = stream(2, [1, 33, 66, 99, 132, 165], recv_delay_ms=40)
    sync = ApproximateSync((1, 2), slop_ns=20 * MS)
    got = run_all(sync, arrival(radar, camera), chunks=1)
    assert got == [(0, 1), (50, 66), (100, 99), (150, 165)]
    assert sync.unmatched.tolist() == [0, 2]  # 66 and 132 dropped, counted
    assert sync.out_of_order.tolist() == [0, 0]


def test_a_set_waits_until_no_better_match_can_arrive():
    sync = ApproximateSync((1, 2), slop_ns=100 * MS)
    # radar 0 and camera 30: radar is earliest, and its next record (not here yet) may pair
    # better with camera 30. So nothing yet.
    assert sets_ms(sync.feed(arrival(stream(1, [0]), stream(2, [30])))) == []
    # radar 40 arrives: {40, 30} spans 10 < 30, so radar 0 is dropped; the set {40, 30} now
    # waits on camera (earliest), whose next record may still beat it.
    assert sets_ms(sync.feed(stream(1, [40]))) == []
    assert sets_ms(sync.feed(stream(2, [70]))) == [(40, 30)]  # {40, 70} spans 30 > 10
    assert sync.unmatched.tolist() == [1, 0]


def test_equal_stamps_emit_at_once():
    sync = ApproximateSync((1, 2, 3), slop_ns=0)
    got = sets_ms(sync.feed(arrival(stream(1, [10]), stream(2, [10]), stream(3, [10]))))
    assert got == [(10, 10, 10)]


@pytest.mark.parametrize(("gap_ns", "matched"), [(5 * MS, True), (5 * MS + 1, False)])
def test_slop_edge_is_inclusive(gap_ns, matched):
    a, b = stream(1, [0, 1000]), stream(2, [0, 1000])
    b["ts_event"][0] = gap_ns
    sync = ApproximateSync((1, 2), slop_ns=5 * MS)
    got = run_all(sync, arrival(a, b), chunks=1)
    first = (0.0, gap_ns / MS)
    assert (first in got) is matched
    assert got[-1] == (1000, 1000)
    assert sync.unmatched.sum() == (0 if matched else 2)


def test_same_sets_whatever_the_batching_or_arrival_order():
    rng = np.random.default_rng(7)
    streams = [
        stream(1, np.sort(rng.uniform(0, 5000, 100)).round(3).tolist(), 18),
        stream(2, np.sort(rng.uniform(0, 5000, 150)).round(3).tolist(), 55),
        stream(3, np.sort(rng.uniform(0, 5000, 500)).round(3).tolist(), 1),
    ]
    recs = arrival(*streams)
    whole = run_all(ApproximateSync((1, 2, 3), 30 * MS), recs, chunks=1)
    assert len(whole) > 50
    assert whole == run_all(ApproximateSync((1, 2, 3), 30 * MS), recs, chunks=37)
    by_stream = np.concatenate(streams)  # every radar record first: another arrival order
    assert whole == run_all(ApproximateSync((1, 2, 3), 30 * MS), by_stream, chunks=5)
    assert all(max(s) - min(s) <= 30 for s in whole)


def test_out_of_order_and_foreign_records_are_counted_and_dropped():
    recs = np.concatenate((stream(1, [0, 20, 10]), stream(9, [5]), stream(2, [0, 20])))
    sync = ApproximateSync((1, 2), slop_ns=MS)
    assert run_all(sync, recs, chunks=1) == [(0, 0), (20, 20)]
    assert sync.out_of_order.tolist() == [1, 0]
    assert sync.ignored == 1


def test_latest_value_flags_stale_and_missing_and_never_reuses_them():
    # Trigger: radar every 50 ms. Wheel at 0 and 120 ms, max age 60 ms; camera never comes.
    radar = stream(1, [0, 50, 100, 150, 200], recv_delay_ms=1)  # the wheel's 0 arrives first
    wheel = stream(4, [0, 120])
    camera = stream(2, [])
    sync = LatestSync((1, 4, 2), trigger=1, max_age_ns=(60 * MS, 60 * MS, 60 * MS))
    f = sync.feed(arrival(radar, wheel, camera))
    assert (f.ts_ns / MS).tolist() == [0, 50, 100, 150, 200]
    # wheel ages by hand: 0, 50, 100 (> 60: stale), 30 (the 120 record), 80 (stale)
    assert f.stale[:, 1].tolist() == [False, False, True, False, True]
    assert f.missing[:, 2].all() and not f.missing[:, :2].any()
    wheel_values = f.records["values"][:, 1, 0]
    assert np.isnan(wheel_values[[2, 4]]).all()  # blanked, not the old reading
    assert wheel_values[[0, 1, 3]].tolist() == [0, 0, 120]


def test_latest_value_is_the_same_in_one_batch_or_many():
    rng = np.random.default_rng(3)
    radar = stream(1, np.arange(0, 3000, 50.0).tolist(), 18)
    imu = stream(3, np.sort(rng.uniform(0, 3000, 200)).round(3).tolist(), 1)
    wheel = stream(4, np.arange(0, 1500, 20.0).tolist(), 6)  # stops halfway: goes stale
    recs = arrival(radar, imu, wheel)
    ages = (100 * MS, 30 * MS, 40 * MS)
    whole = LatestSync((1, 3, 4), 1, ages).feed(recs)
    sync = LatestSync((1, 3, 4), 1, ages)
    parts = [sync.feed(p) for p in np.array_split(recs, 23)]
    for name in ("ts_ns", "stale", "missing"):
        assert np.array_equal(
            whole._asdict()[name], np.concatenate([p._asdict()[name] for p in parts])
        )
    split = np.concatenate([p.records for p in parts])
    assert np.array_equal(whole.records["seq"], split["seq"])
    assert np.array_equal(np.isnan(whole.records["values"]), np.isnan(split["values"]))
    assert whole.stale[:, 2][-10:].all() and not whole.stale[:, 2][5:25].any()


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="trigger sensor 5"):
        LatestSync((1, 2), trigger=5, max_age_ns=(1, 1))
    with pytest.raises(ValueError, match="max_age_ns"):
        LatestSync((1, 2), trigger=1, max_age_ns=(1,))
    with pytest.raises(ValueError, match="each once"):
        ApproximateSync((1, 1), slop_ns=1)
