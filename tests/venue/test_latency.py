import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redline.venue.latency import Latency, at, drawn, read_order_latency


def test_legs_parse_in_microseconds_and_missing_ones_are_zero():
    lat = Latency.parse("decision=50,entry=120")
    assert (lat.decision_us, lat.entry_us, lat.ack_us) == (50, 120, 0)
    assert lat.vector_ns().tolist() == [50_000, 120_000, 0]


@pytest.mark.parametrize("text", ["decision=-1", "wire=5", "decision:5"])
def test_a_bad_leg_is_named(text):
    with pytest.raises(ValueError, match="--latency"):
        Latency.parse(text)


def test_a_decision_leg_is_drawn_from_the_samples_by_the_decision_number_alone():
    samples = np.array([10, 20, 30, 40], np.int64)
    draws = [drawn(samples, k) for k in range(400)]
    assert draws == [drawn(samples, k) for k in range(400)]  # no hidden state
    assert set(draws) == {10, 20, 30, 40}  # each sample drawn
    assert max(np.bincount(np.array(draws) // 10)) < 140  # none drawn half the time
    assert drawn(np.array([7], np.int64), 12345) == 7  # one sample: a constant


def test_recorded_legs_interpolate_linearly_and_hold_flat_outside():
    ts = np.array([1000, 2000, 4000], np.int64)
    ns = np.array([100, 300, 100], np.int64)
    assert at(ts, ns, 0) == 100 and at(ts, ns, 9999) == 100  # flat outside
    assert at(ts, ns, 1500) == 200  # half way from 100 to 300
    assert at(ts, ns, 3000) == 200 and at(ts, ns, 2000) == 300


def test_an_order_latency_file_is_read_as_csv_or_parquet(tmp_path):
    csv = tmp_path / "lat.csv"
    csv.write_text("ts_ns,entry_ns,response_ns\n0,1000,50\n10,3000,70\n")
    legs = Latency().legs().with_recorded("entry", csv)
    assert legs.entry_ts.tolist() == [0, 10] and legs.entry_ns.tolist() == [1000, 3000]
    assert legs.ack_ns.tolist() == [0]  # the ack leg untouched
    pq.write_table(pa.table({"ts_ns": [0, 10], "entry_ns": [1, 2], "response_ns": [5, 9]}),
                   tmp_path / "lat.parquet")  # fmt: skip
    legs = legs.with_recorded("ack", tmp_path / "lat.parquet")
    assert legs.ack_ns.tolist() == [5, 9] and legs.entry_ns.tolist() == [1000, 3000]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ts_ns,entry_ns\n0,1\n", "no column response_ns; it needs ts_ns, entry_ns, response_ns"),
        ("ts_ns,entry_ns,response_ns\n5,1,1\n0,1,1\n", "ts_ns goes back at row 1; sort it"),
        ("ts_ns,entry_ns,response_ns\n0,-1,1\n", "entry_ns is negative at row 0"),
        ("ts_ns,entry_ns,response_ns\n0,1.5,1\n", "column entry_ns must be integers"),
    ],
)
def test_a_bad_order_latency_file_is_named(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"--latency file:{path}: {message}"):
        read_order_latency(path)


def test_decision_samples_are_checked():
    with pytest.raises(ValueError, match="holds no decision to sample from"):
        Latency().legs().with_decision(np.zeros(0, np.int64), "journal j.arrow")
    legs = Latency().legs().with_decision(np.array([30, 10, 20]), "j")
    assert legs.decision.tolist() == [10, 20, 30]
    assert legs.describe()["decision"]["points"] == 3
