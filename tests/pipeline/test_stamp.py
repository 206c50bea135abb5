import numpy as np
import pytest

from redline.feeds.events import DECISION_DTYPE, STAGES
from redline.pipeline.stamp import ANSWER_DTYPE, request_dtype, stage_latencies


def test_request_carries_header_stamps_quote_and_features():
    dt = request_dtype(5)
    assert dt["features"].shape == (5,)
    for name in ("ts_recv", "seq", "instrument_id", "deadline", "bid_px", *STAGES):
        assert name in dt.names
    with pytest.raises(ValueError, match="n_features must be > 0"):
        request_dtype(0)


def test_answer_is_a_decision_plus_its_quote():
    assert set(DECISION_DTYPE.names) < set(ANSWER_DTYPE.names)
    assert set(ANSWER_DTYPE.names) - set(DECISION_DTYPE.names) == {"bid_px", "ask_px"}


def test_stage_latencies_are_stamp_differences_skipping_unstamped():
    d = np.zeros(2, DECISION_DTYPE)
    for k, s in enumerate(STAGES):
        d[s][0] = 1000 + 10 * k * k
    d[list(STAGES)][1] = d[list(STAGES)][0]
    d["ts_worker_start"][1] = d["ts_worker_end"][1] = 0  # no worker answered
    lat = stage_latencies(d)
    assert list(lat) == list(STAGES[1:])
    assert list(lat["ts_features"]) == [10, 10]
    assert list(lat["ts_worker_start"]) == [50]  # row 1 has no sample
    assert list(lat["ts_worker_end"]) == [70]
    assert list(lat["ts_answer"]) == [90]
    assert list(lat["ts_decision"]) == [110, 110]
