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


class Batched(Identity):
    """Identity that takes up to 3 rows per call and records each call's batch size."""

    max_batch = 3

    def __init__(self) -> None:
        self.calls: list[int] = []

    def run_into(self, x, out):
        self.calls.append(len(x))
        out[...] = x


def test_batch_answers_rows_as_of_each_event_in_calls_of_max_batch():
    plan = Batched()
    e = CpuEngine(plan)
    for no in range(1, 9):
        e.apply(no, RecordType.QUOTE, quote(no % 2, no, no + 1))
    nos = np.array([2, 5, 3, 8, 1, 7, 99], np.uint64)  # 99: never applied
    out = np.zeros((len(nos), 8), np.float32)
    held = e.answer_batch_into(nos, out)
    assert held.tolist() == [True] * 6 + [False]
    assert plan.calls == [3, 3, 1]
    one = np.zeros(8, np.float32)
    for no, row in zip(nos[:6].tolist(), out, strict=False):
        e.answer_into(no, one)
        np.testing.assert_array_equal(row, one)


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


class Linear14:
    """14 -> 14 copy: the kernels' feature width, so `make_features` picks KernelFeatures."""

    in_features = out_features = 14
    version_id = 5

    def run_into(self, x, out):
        out[...] = x


def market(n: int) -> list[tuple[int, np.ndarray]]:
    rng = np.random.default_rng(3)
    events = []
    for i in range(n):
        if i % 3 == 2:
            r = np.zeros((), TRADE_DTYPE)
            r["px"], r["sz"], r["aggressor"] = 1000 + rng.integers(-3, 4), 1 + i % 5, 1 + i % 2
            rtype = RecordType.TRADE
        else:
            r = np.zeros((), QUOTE_DTYPE)
            bid = 1000 + rng.integers(-3, 4)
            r["bid_px"], r["ask_px"], r["bid_sz"], r["ask_sz"] = bid, bid + 2, 1 + i % 7, 3
            rtype = RecordType.QUOTE
        r["instrument_id"] = 10 + i % 2
        r["ts_event"] = r["ts_recv"] = 1_000_000 * i
        events.append((rtype, r))
    return events


def test_kernel_features_match_feature_state_and_survive_snapshot():
    from redline.kernels.features import FeatureState

    plan = Linear14()
    e = CpuEngine(plan)
    assert e.features.kind == "kernels"
    ref = FeatureState(np.ones(2))
    out, want = np.zeros(14, np.float32), np.zeros(14, np.float32)
    events = market(40)
    for no, (rtype, r) in enumerate(events[:30], start=1):
        e.apply(no, rtype, r)
        row = int(r["instrument_id"]) - 10
        upd = ref.update_quote if rtype == RecordType.QUOTE else ref.update_trade
        upd(row, r.reshape(1), 0, want)
        e.answer_into(no, out)
        np.testing.assert_array_equal(out, want)
    assert np.abs(want).sum() > 0  # real features, not zeros
    b = CpuEngine(plan)
    b.restore(e.snapshot())
    for no, (rtype, r) in enumerate(events[30:], start=31):
        e.apply(no, rtype, r)
        b.apply(no, rtype, r)
        e.answer_into(no, out)
        b.answer_into(no, want)
        np.testing.assert_array_equal(out, want)
