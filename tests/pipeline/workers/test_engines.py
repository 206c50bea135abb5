"""The resident state: windows per instrument, rows per event, snapshot and restore."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds.events import DTYPES, QUOTE_DTYPE, TRADE_DTYPE, RecordType
from redline.feeds.replay.reader import replay
from redline.kernels import training
from redline.kernels.feature_state import BookFeatures, make_features
from redline.kernels.plans.numpy_loader import load_numpy_plan
from redline.pipeline.workers.engines import CpuEngine, warm_up
from redline.pipeline.workers.process import build_engine
from redline.replay_data import DIR


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


@pytest.mark.parametrize("kind", ["window", "kernels"])
def test_apply_many_of_a_batch_in_runs_is_apply_one_by_one(kind):
    """The worker applies an EVENTS batch run by run (record_runs): same rows, same state."""
    from redline.feeds.wire.frames import SLOT, record_runs
    from redline.kernels.features import N_FEATURES

    class Wide(Identity):
        in_features = out_features = N_FEATURES if kind == "kernels" else 8

    recs, rtypes = [], []
    for no in range(1, 41):  # quotes, then trades, then a book delta, ... (runs of 1..5)
        rt = (RecordType.QUOTE, RecordType.TRADE, RecordType.BOOK_DELTA)[(no // 5) % 3]
        r = np.zeros(1, DTYPES[rt])
        r["instrument_id"], r["ts_event"] = no % 3, no * 1000
        if rt == RecordType.QUOTE:
            r["bid_px"], r["ask_px"], r["bid_sz"], r["ask_sz"] = 100 + no % 4, 102, 1 + no % 3, 2
        else:
            r["px"], r["sz"] = 101 + no % 3, 1 + no % 5
            if rt == RecordType.TRADE:
                r["aggressor"] = 1 + no % 2
        recs.append(r)
        rtypes.append(rt)
    slots = np.zeros((len(recs), SLOT), np.uint8)
    for j, r in enumerate(recs):
        slots[j, : r.itemsize] = r.view(np.uint8)
    nos = np.arange(1, 41, dtype=np.uint64)
    one, many = (CpuEngine(Wide(), make_features(Wide(), kind)) for _ in range(2))
    for no, rt, r in zip(nos.tolist(), rtypes, recs, strict=True):
        one.apply(no, rt, r)
    runs = list(record_runs(np.array(rtypes, np.uint8), nos, slots))
    assert [len(n) for _, n, _ in runs] == [4, 5, 5, 5, 5, 5, 5, 5, 1]
    for rt, nos_, rs in runs:
        many.apply_many(nos_, rt, rs)
    a = np.zeros((40, Wide.out_features), np.float32)
    b = np.zeros_like(a)
    assert one.answer_batch_into(nos, a).all() and many.answer_batch_into(nos, b).all()
    np.testing.assert_array_equal(a, b)
    assert one.snapshot() == many.snapshot()


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


def test_an_instrument_past_the_capacity_is_counted_not_raised():
    from redline.kernels.feature_state import KernelFeatures, WindowFeatures

    q = np.zeros(3, QUOTE_DTYPE)
    q["instrument_id"] = [1, 2, 3]
    q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = 100, 101, 1, 1
    for state in (KernelFeatures(max_instruments=2), WindowFeatures(8, max_instruments=2)):
        out = np.full(state.k, 7.0, np.float32)
        for i in range(3):
            state.update(1, q[i : i + 1], out)
        assert state.inst.overflow == 1 and (out == 0).all()  # no state, no stale row
        assert sorted(state.inst.index) == [1, 2]


# -- the book model: quotes, trades and book deltas in, the training replay's predictions out --

MODEL_BOOK = DIR / "model_book"
FILES = {
    "market_quotes.parquet": RecordType.QUOTE,
    "market_trades.parquet": RecordType.TRADE,
    "market_book.parquet": RecordType.BOOK_DELTA,
}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The first 5 s of the bundled market recording: ~2k quotes, ~4.7k book deltas (two
    re-snapshots after a gap among them: CLEARs flagged GAP_BEFORE), a few hundred trades."""
    out = tmp_path_factory.mktemp("book_recording")
    t0 = None
    for name, rtype in FILES.items():
        recs = es.from_arrow(pq.read_table(DIR / name), rtype)
        t0 = int(recs["ts_recv"][0]) if t0 is None else t0
        recs = recs[recs["ts_recv"] < t0 + 5_000_000_000]
        pq.write_table(pa.Table.from_batches([es.to_arrow(recs)]), out / name)
    return out


def worker_batches(recording, size: int = 13):
    """The recording in replay order as a worker's EVENTS batches: up to `size` events of mixed
    types in read-only slots, split into runs of one type (`record_runs`), numbered from 1."""
    from redline.feeds.wire.frames import SLOT, record_runs

    events = [(rt, recs[j : j + 1]) for rt, recs in replay(sorted(recording.iterdir()))
              for j in range(len(recs))]  # fmt: skip
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        slots = np.zeros((len(chunk), SLOT), np.uint8)
        for j, (_, r) in enumerate(chunk):
            slots[j, : r.itemsize] = r.view(np.uint8)
        slots.flags.writeable = False  # as a worker's receive buffer
        rtypes = np.array([rt for rt, _ in chunk], np.uint8)
        nos = np.arange(start + 1, start + 1 + len(chunk), dtype=np.uint64)
        yield list(record_runs(rtypes, nos, slots))


def test_the_bundled_book_model_gets_the_book_state():
    engine = build_engine("cpu", str(MODEL_BOOK), 0)
    assert isinstance(engine.features, BookFeatures)
    assert engine.plan.input_features == tuple(training.INPUTS["book"])


def test_worker_answers_equal_the_training_replay_and_survive_a_snapshot(recording):
    quotes, x = training.book_quote_features([str(recording)])
    plan = load_numpy_plan(MODEL_BOOK)
    want = np.zeros(len(x), np.float32)
    y = np.zeros((1, 1), np.float32)
    for i in range(len(x)):
        plan.run_into(x[i : i + 1], y)  # [1, K] -> [1, 1], as a worker answers one event
        want[i] = y[0, 0]
    assert len(quotes) > 1000 and np.count_nonzero(x[:, -4:].any(1)) > 0.9 * len(x)

    engine = build_engine("cpu", str(MODEL_BOOK), 0)
    warm_up(engine)  # as the worker does before READY: it must leave no state behind
    got, out = [], np.zeros(1, np.float32)
    batches = list(worker_batches(recording))
    half = len(batches) // 2
    for b, runs in enumerate(batches):
        if b == half:  # failover: a fresh standby restored from the live worker's snapshot
            standby = build_engine("cpu", str(MODEL_BOOK), 0)
            warm_up(standby)
            standby.restore(engine.snapshot())
            engine = standby
        for rt, nos, recs in runs:
            engine.apply_many(nos, rt, recs)
            if rt == RecordType.QUOTE:
                for no in nos.tolist():
                    engine.answer_into(no, out)
                    got.append(out[0])
    np.testing.assert_array_equal(np.array(got, np.float32), want)
    assert all(b.valid for b in engine.features.books.values())  # the re-snapshots healed them
