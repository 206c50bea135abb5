import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from redline.feeds.events import Flag, Origin, RecordType, empty
from redline.pipeline.observe.latency import (
    HIGHEST_NS,
    PERCENTILES,
    STAGE_NAMES,
    LatencyStats,
    StageHistogram,
    count_by_origin,
    count_deadline_misses,
    stage_durations,
)


def _expected(values: np.ndarray, pct: float) -> int:
    """The value of rank round(pct * N) in the sorted samples (HDR's rule)."""
    s = np.sort(values)
    rank = max(int(pct * s.size / 100 + 0.5), 1)
    return int(s[rank - 1])


def _assert_within_hdr(got: int, want: int, vmax: int) -> None:
    # HDR reports the highest value of the bucket: >= the sample, < 0.1% above.
    assert want <= got <= min(want * 1.001 + 1, vmax), (got, want)


def test_vectorised_recording_matches_library_counts():
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [
            rng.integers(0, 5_000, 300),  # unit-resolution buckets
            rng.lognormal(np.log(200_000), 2.0, 3000).astype(np.int64),
            np.array([1, 2047, 2048, 4095, 4096, HIGHEST_NS], dtype=np.int64),
        ]
    )
    values = np.minimum(values, HIGHEST_NS)
    ours = StageHistogram()
    ours.record(values[:40])  # small batch: the add.at path
    ours.record(values[40:])  # large batch: the bincount path
    ref = HdrHistogram(1, HIGHEST_NS, 3)
    for v in values.tolist():
        assert ref.record_value(v)
    np.testing.assert_array_equal(
        np.ctypeslib.as_array(ours.hdr.counts), np.ctypeslib.as_array(ref.counts)
    )
    assert ours.count == ref.get_total_count() == values.size
    lib = ref.get_percentile_to_value_dict(list(PERCENTILES.values()))
    got = ours.percentiles()
    for key, pct in PERCENTILES.items():
        assert got[key] == min(lib[pct], int(values.max()))
    assert got["max"] == int(values.max())


def test_summary_matches_numpy_percentiles_per_stage(make_decisions):
    d = make_decisions(5000, seed=3)
    stats = LatencyStats()
    stats.record(d)
    summary = stats.summary()
    raw = stage_durations(d)
    t2d = raw["tick_to_decision"]
    assert summary["latency_samples"] == d.size
    for key, pct in PERCENTILES.items():
        _assert_within_hdr(summary["latency_ns"][key], _expected(t2d, pct), int(t2d.max()))
    assert summary["latency_ns"]["max"] == int(t2d.max())
    assert set(summary["stages"]) == set(STAGE_NAMES)
    for name in STAGE_NAMES:
        for key, pct in PERCENTILES.items():
            _assert_within_hdr(
                summary["stages"][name][key], _expected(raw[name], pct), int(raw[name].max())
            )
        assert summary["stages"][name]["max"] == int(raw[name].max())


def test_default_origin_counted_end_to_end_but_has_no_worker_stages(make_decisions):
    d = make_decisions(400, seed=5)
    n_default = int(np.count_nonzero(d["origin"] == Origin.DEFAULT))
    assert 0 < n_default < d.size
    stats = LatencyStats()
    stats.record(d)
    assert stats.total.count == d.size
    assert stats.stages["features"].count == d.size
    assert stats.stages["compute"].count == d.size - n_default
    assert stats.stages["decide"].count == d.size - n_default


def test_bad_ts_recv_and_snapshot_records_are_excluded(make_decisions):
    d = make_decisions(300, seed=7)
    d["flags"][:10] = Flag.BAD_TS_RECV
    d["flags"][10:15] = Flag.SNAPSHOT | Flag.LAST
    d["ts_decision"][:15] += 10_000_000_000  # would dominate the tail if counted
    d["flags"][15] = Flag.LAST  # other flags keep the record
    stats = LatencyStats()
    stats.record(d)
    summary = stats.summary()
    assert stats.decisions == 300
    assert summary["latency_excluded"] == 15
    assert summary["latency_samples"] == 285
    assert summary["latency_ns"]["max"] == int((d["ts_decision"] - d["ts_recv"])[15:].max())


def test_batches_add_up_to_the_whole(make_decisions):
    d = make_decisions(1000, seed=11)
    whole, parts = LatencyStats(), LatencyStats()
    whole.record(d)
    for chunk in np.array_split(d, 7):
        parts.record(chunk)
    parts.record(d[:0])
    assert parts.summary() == whole.summary()


def test_negative_spans_counted_and_stalls_clamped_not_dropped():
    d = empty(RecordType.DECISION, 3)
    d["ts_recv"] = [100, 200, 300]
    d["ts_feed"] = [150, 150, 400]  # second is before its ts_recv
    d["ts_decision"] = [1_000, 2_000, 300 + 2 * HIGHEST_NS]
    stats = LatencyStats()
    stats.record(d)
    assert stats.stages["feed"].negative == 1
    assert stats.stages["feed"].count == 2
    assert stats.total.clamped == 1
    assert stats.total.count == 3
    summary = stats.summary()
    assert summary["latency_ns"]["max"] == 2 * HIGHEST_NS  # the exact stall
    assert summary["latency_ns"]["p99"] >= HIGHEST_NS * 0.999


def test_empty_stats_report_none_not_zero():
    summary = LatencyStats().summary()
    assert summary["latency_ns"] == {"p50": None, "p99": None, "p999": None, "max": None}
    assert all(v["p99"] is None for v in summary["stages"].values())


def test_wrong_dtype_is_refused():
    with pytest.raises(TypeError, match="DECISION_DTYPE"):
        LatencyStats().record(empty(RecordType.QUOTE, 2))


def test_origin_counts_and_deadline_misses():
    d = empty(RecordType.DECISION, 6)
    d["origin"] = [0, 0, 1, 2, 3, 3]
    d["deadline"] = [100, 100, 100, 100, 100, 0]  # last: no deadline set
    d["ts_decision"] = [99, 100, 101, 150, 100, 10_000]
    assert count_by_origin(d) == {"worker_a": 2, "worker_b": 1, "fallback": 1, "default": 2}
    assert count_deadline_misses(d) == 2  # on the deadline is in time
    d["origin"][3] = 9
    with pytest.raises(ValueError, match="decision 3: origin 9"):
        count_by_origin(d)
