"""`BookFeatures`: kernel features plus a resident L2 book per instrument, its snapshots, and
the plan inputs that select it."""

from __future__ import annotations

import numpy as np
import pytest

from redline.feeds.books.l2 import L2Book
from redline.feeds.events import (
    BOOK_DELTA_DTYPE,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    BookAction,
    Flag,
    RecordType,
    Side,
)
from redline.kernels.book_features import book_features
from redline.kernels.feature_names import BOOK_INPUT_NAMES, FEATURE_NAMES, N_FEATURES
from redline.kernels.feature_state import BookFeatures, KernelFeatures, make_features, quote_rows
from redline.kernels.plans.inputs import resolve_features
from redline.kernels.plans.plan_file import PlanFileError

NK = N_FEATURES


def stream(seed: int, n: int, instruments=(7, 9)) -> list[tuple[int, np.ndarray]]:
    """n events (rtype, 1-record array) of a few instruments: each book starts with a CLEAR,
    then level updates and deletes within a few ticks of 5,000,000 (one in ten up to 2e6 ticks
    out, past the dense window: far levels), quotes and trades around a walking mid."""
    rng = np.random.default_rng(seed)
    mid = {i: 5_000_000 for i in instruments}
    out: list[tuple[int, np.ndarray]] = []
    for i in instruments:
        d = np.zeros(1, BOOK_DELTA_DTYPE)
        d["instrument_id"], d["action"], d["flags"] = i, BookAction.CLEAR, Flag.SNAPSHOT
        out.append((RecordType.BOOK_DELTA, d))
    for t in range(1, n + 1):
        i = int(rng.choice(instruments))
        mid[i] += int(rng.integers(-2, 3))
        u = rng.random()
        if u < 0.6:
            d = np.zeros(1, BOOK_DELTA_DTYPE)
            side = Side.BID if rng.random() < 0.5 else Side.ASK
            off = int(rng.integers(1, 2_000_000 if rng.random() < 0.1 else 8))
            d["side"], d["px"] = side, 5_000_000 - off if side == Side.BID else 5_000_001 + off
            d["action"] = BookAction.DELETE if rng.random() < 0.25 else BookAction.UPDATE
            d["sz"] = int(rng.integers(1, 300))
            d["flags"] = Flag.LAST
            rec, rtype = d, RecordType.BOOK_DELTA
        elif u < 0.9:
            rec, rtype = np.zeros(1, QUOTE_DTYPE), RecordType.QUOTE
            rec["bid_px"], rec["ask_px"] = mid[i] - 1, mid[i] + 1
            rec["bid_sz"], rec["ask_sz"] = rng.integers(1, 50, 2)
        else:
            rec, rtype = np.zeros(1, TRADE_DTYPE), RecordType.TRADE
            rec["px"], rec["sz"], rec["aggressor"] = mid[i], int(rng.integers(1, 9)), 1
        rec["instrument_id"], rec["ts_event"] = i, t * 1_000_000
        out.append((rtype, rec))
    return out


def rows_of(state, events) -> np.ndarray:
    out = np.zeros((len(events), state.k), np.float32)
    for j, (rtype, rec) in enumerate(events):
        state.update(rtype, rec, out[j])
    return out


def test_rows_are_the_kernel_features_then_the_instruments_book():
    events = stream(1, 600)
    got = rows_of(BookFeatures(), events)
    kernel = KernelFeatures()
    books = {i: L2Book(i) for i in (7, 9)}
    want = np.zeros_like(got)
    for j, (rtype, rec) in enumerate(events):
        iid = int(rec["instrument_id"][0])
        if rtype == RecordType.BOOK_DELTA:
            books[iid].apply(rec)
        kernel.update(rtype, rec, want[j, :NK])  # deltas leave the kernel part as it was
        book_features(books[iid], want[j, NK:])
    np.testing.assert_array_equal(got, want)
    assert np.count_nonzero(got[:, NK:].any(1)) > len(events) // 2  # the books said something


def test_update_many_and_quote_rows_are_update_one_by_one():
    events = stream(2, 400)
    one = rows_of(BookFeatures(), events)
    # the same events as runs of one record type, as a worker's EVENTS batch or the reader
    runs: list[tuple[int, np.ndarray]] = []
    for rtype, rec in events:
        if runs and runs[-1][0] == rtype:
            runs[-1] = (rtype, np.concatenate([runs[-1][1], rec]))
        else:
            runs.append((rtype, rec))
    state = BookFeatures()
    many = np.zeros_like(one)
    at = 0
    for rtype, recs in runs:
        state.update_many(rtype, recs, many, list(range(at, at + len(recs))))
        at += len(recs)
    np.testing.assert_array_equal(many, one)
    is_quote = np.array([rtype == RecordType.QUOTE for rtype, _ in events])
    got = np.concatenate([x for _, x in quote_rows(BookFeatures(), runs)])
    np.testing.assert_array_equal(got, one[is_quote])


@pytest.mark.parametrize("cut", [0, 1, 250, 599])
def test_snapshot_restore_mid_stream_continues_identically(cut):
    events = stream(3, 600)
    whole = rows_of(BookFeatures(), events)
    first = BookFeatures()
    rows_of(first, events[:cut])
    standby = BookFeatures()
    rows_of(standby, stream(4, 50))  # a standby's own stale state is replaced, not merged
    standby.restore(first.snapshot())
    np.testing.assert_array_equal(rows_of(standby, events[cut:]), whole[cut:])


def test_a_snapshot_keeps_an_invalid_book_invalid_and_far_levels():
    state = BookFeatures()
    events = stream(5, 300)
    gap = np.zeros(1, BOOK_DELTA_DTYPE)
    gap["instrument_id"], gap["side"], gap["action"], gap["px"], gap["sz"] = 7, Side.BID, 1, 5, 1
    gap["flags"] = Flag.GAP_BEFORE
    rows_of(state, [*events, (RecordType.BOOK_DELTA, gap)])
    assert not state.books[state.inst.index[7]].valid
    assert state.books[state.inst.index[9]].stats["far_levels"] > 0
    back = BookFeatures()
    back.restore(state.snapshot())
    for iid in (7, 9):
        a, b = state.books[state.inst.index[iid]], back.books[back.inst.index[iid]]
        assert a.valid == b.valid
        for side in (Side.BID, Side.ASK):
            np.testing.assert_array_equal(a.levels(side, 10**6), b.levels(side, 10**6))
    np.testing.assert_array_equal(back.book, state.book)
    assert back.snapshot() == state.snapshot()


def test_a_gap_flagged_snapshot_heals_the_book():
    """The recording flags the CLEAR that follows a gap: the gap lies before the snapshot."""
    d = np.zeros(3, BOOK_DELTA_DTYPE)
    d["instrument_id"] = 1
    d["action"] = BookAction.CLEAR, BookAction.ADD, BookAction.ADD
    d["flags"] = Flag.SNAPSHOT | Flag.GAP_BEFORE, Flag.SNAPSHOT, Flag.SNAPSHOT | Flag.LAST
    d["side"], d["px"], d["sz"] = (0, Side.BID, Side.ASK), (0, 99, 101), (0, 3, 1)
    state = BookFeatures()
    out = np.zeros(state.k, np.float32)
    for j in range(3):
        state.update(RecordType.BOOK_DELTA, d[j : j + 1], out)
    assert out[NK:].tolist() == [0.5, 0.25, pytest.approx(np.log1p(4)), 2.0]


def test_restore_of_nothing_empties_and_a_cut_blob_is_refused():
    state = BookFeatures()
    rows_of(state, stream(6, 100))
    blob = state.snapshot()
    state.restore(b"")
    assert not state.books and not state.inst.index and not state.book.any()
    for bad in (blob[:-8], blob[:20], blob + b"\0" * 8):
        with pytest.raises(ValueError, match="book state blob"):
            BookFeatures().restore(bad)


def test_an_order_level_delta_is_counted_not_read_as_a_level():
    d = np.zeros(1, BOOK_DELTA_DTYPE)
    d["instrument_id"], d["order_id"], d["side"], d["action"] = 1, 42, Side.BID, BookAction.ADD
    d["px"], d["sz"] = 100, 5
    state = BookFeatures()
    state.update(RecordType.BOOK_DELTA, d, np.zeros(state.k, np.float32))
    assert state.l3_deltas == 1 and not state.books


class Plan:
    in_features = len(BOOK_INPUT_NAMES)
    input_features = BOOK_INPUT_NAMES


def test_plans_naming_the_book_inputs_get_the_book_state():
    assert resolve_features("p", 18, list(BOOK_INPUT_NAMES), "auto") == "book"
    assert resolve_features("p", 18, list(BOOK_INPUT_NAMES), "book") == "book"
    assert resolve_features("p", 18, None, "book") == "book"
    assert isinstance(make_features(Plan()), BookFeatures)
    with pytest.raises(PlanFileError, match="feed book features, 18 inputs"):
        resolve_features("p", N_FEATURES, list(FEATURE_NAMES), "book")
    with pytest.raises(PlanFileError, match="redline train --features book"):
        resolve_features("p", N_FEATURES, None, "book")
    with pytest.raises(PlanFileError, match="feed kernels features, 14 inputs"):
        resolve_features("p", 18, list(BOOK_INPUT_NAMES), "kernels")
