"""The resident state: windows per instrument, rows per event, snapshot and restore."""

from __future__ import annotations

import numpy as np
import pytest

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, RecordType
from redline.pipeline.engine import CpuEngine


class Identity:
    """8 -> 8 copy, behind the plan call shape, so answers show the input row."""

    in_features = out_features = 8
    version_id = 3

    def run_into(self, x, out):
        out[...] = x


def quote(inst, bid, ask):
    q = np.zeros((), QUOTE_DTYPE)
    q["instrument_id"], q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = inst, bid, ask, 1, 2
    return q


def test_window_is_per_instrument_newest_first_and_rows_are_per_event():
    e = CpuEngine(Identity())
    e.apply(1, RecordType.QUOTE, quote(7, 10, 11))
    e.apply(2, RecordType.QUOTE, quote(8, 50, 51))
    t = np.zeros((), TRADE_DTYPE)
    t["instrument_id"], t["px"], t["sz"], t["aggressor"] = 7, 12, 3, 1
    e.apply(3, RecordType.TRADE, t)
    out = np.zeros(8, np.float32)
    e.answer_into(1, out)  # as of event 1, not the latest state
    assert out.tolist() == [10, 11, 1, 2, 0, 0, 0, 0]
    e.answer_into(3, out)
    assert out.tolist() == [12, 3, 1, 0, 10, 11, 1, 2]
    e.answer_into(2, out)
    assert out.tolist() == [50, 51, 1, 2, 0, 0, 0, 0]
    with pytest.raises(LookupError, match="event 4"):
        e.answer_into(4, out)


def test_snapshot_restore_round_trip_then_same_answers():
    a, b = CpuEngine(Identity()), CpuEngine(Identity())
    for no in range(1, 20):
        a.apply(no, RecordType.QUOTE, quote(no % 3, no, no + 1))
    b.restore(a.snapshot())
    for e in (a, b):
        e.apply(20, RecordType.QUOTE, quote(1, 99, 100))
    oa, ob = np.zeros(8, np.float32), np.zeros(8, np.float32)
    a.answer_into(20, oa)
    b.answer_into(20, ob)
    np.testing.assert_array_equal(oa, ob)
    with pytest.raises(ValueError, match="not n"):
        b.restore(b"\x00" * 7)


def test_in_features_not_multiple_of_4_is_refused():
    class Bad(Identity):
        in_features = 6

    with pytest.raises(ValueError, match="multiple of 4, got 6"):
        CpuEngine(Bad())
