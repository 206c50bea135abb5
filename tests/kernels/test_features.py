"""Feature kernel: live == replay bit for bit, both == the plain-Python reference."""

import math

import numpy as np
import pytest

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, Side
from redline.kernels.features import (
    FEATURE_NAMES,
    N_FEATURES,
    FeatureState,
    merge_order,
)
from redline.kernels.features_ref import features_ref
from redline.kernels.plans.calibration import synthetic_market

TICKS = [0.01, 0.25, 0.5]
F = {name: i for i, name in enumerate(FEATURE_NAMES)}
SEC = 1_000_000_000


@pytest.fixture(scope="module")
def market():
    return synthetic_market(300, 120, n_instruments=3, seed=7)


def _live(state, quotes, qrows, trades, trows):
    fq = np.zeros((len(quotes), N_FEATURES), np.float32)
    ft = np.zeros((len(trades), N_FEATURES), np.float32)
    kinds, idx = merge_order(quotes, trades)
    for kind, j in zip(kinds, idx, strict=True):
        if kind == 0:
            state.update_quote(qrows[j], quotes, j, fq[j])
        else:
            state.update_trade(trows[j], trades, j, ft[j])
    return fq, ft


def test_live_and_replay_are_identical(market):
    scan = FeatureState(TICKS).scan(*market)
    live = _live(FeatureState(TICKS), *market)
    assert np.array_equal(scan[0], live[0]) and np.array_equal(scan[1], live[1])
    assert np.isfinite(scan[0]).all() and np.abs(scan[0]).sum() > 0


def test_replay_matches_reference(market):
    got = FeatureState(TICKS).scan(*market)
    want = features_ref(*market, TICKS)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-5)


def test_a_scan_without_trade_features_gives_the_same_quotes_and_state(market):
    # The trades skip their feature refresh; every quote's features and the state after each
    # part stay the same bits (the state's feature vector included: the scan ends refreshed).
    quotes, qrows, trades, trows = market
    cut = quotes["ts_recv"][150]
    qa, ta = quotes["ts_recv"] <= cut, trades["ts_recv"] <= cut
    full, lean = FeatureState(TICKS), FeatureState(TICKS)
    for q, t in ((qa, ta), (~qa, ~ta)):
        want = full.scan(quotes[q], qrows[q], trades[t], trows[t])
        got = lean.scan(quotes[q], qrows[q], trades[t], trows[t], trade_features=False)
        assert len(t.nonzero()[0]) > 10 and got[1].shape == (0, want[1].shape[1])
        assert np.array_equal(got[0], want[0])
        assert np.array_equal(lean.sf, full.sf) and np.array_equal(lean.si, full.si)


def test_scan_in_two_parts_continues_the_state(market):
    quotes, qrows, trades, trows = market
    whole = FeatureState(TICKS).scan(*market)
    cut = quotes["ts_recv"][150]
    qa, ta = quotes["ts_recv"] <= cut, trades["ts_recv"] <= cut
    state = FeatureState(TICKS)
    first = state.scan(quotes[qa], qrows[qa], trades[ta], trows[ta])
    second = state.scan(quotes[~qa], qrows[~qa], trades[~ta], trows[~ta])
    assert np.array_equal(np.concatenate([first[0], second[0]]), whole[0])
    assert np.array_equal(np.concatenate([first[1], second[1]]), whole[1])


def _quote(ts, bid, ask, bsz, asz):
    q = np.zeros(1, QUOTE_DTYPE)
    q["ts_event"] = q["ts_recv"] = ts
    q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = bid, ask, bsz, asz
    return q


def _trade(ts, px, sz, aggressor):
    t = np.zeros(1, TRADE_DTYPE)
    t["ts_event"] = t["ts_recv"] = ts
    t["px"], t["sz"], t["aggressor"] = px, sz, aggressor
    return t


def test_book_features_by_hand():
    state, out = FeatureState([0.5]), np.zeros(N_FEATURES, np.float32)
    assert state.update_quote(0, _quote(SEC, 200, 202, 30, 10), 0, out)
    # bid 100.0, ask 101.0, mid 100.5; micro = (100*10 + 101*30) / 40 = 100.75
    assert out[F["imbalance"]] == pytest.approx(0.5)
    assert out[F["micro_vs_mid"]] == pytest.approx(0.25)
    assert out[F["spread_bp"]] == pytest.approx(1e4 / 100.5, rel=1e-6)
    assert out[F["ret_bp"]] == 0 and out[F["mid_vs_ema_1s_bp"]] == 0
    state.update_quote(0, _quote(SEC + 5_000_000, 202, 204, 10, 10), 0, out)  # 5 ms later
    ret = 1e4 * math.log(101.5 / 100.5)
    assert out[F["ret_bp"]] == pytest.approx(ret, rel=1e-6)
    assert out[F["rv_1s_bp"]] == pytest.approx(abs(ret), rel=1e-6)
    assert out[F["log_quote_dt_ms"]] == pytest.approx(math.log1p(5.0), rel=1e-6)
    # The EMAs held 100.5 and have barely moved towards the new mid yet.
    assert out[F["mid_vs_ema_60s_bp"]] == pytest.approx(ret, rel=1e-3)


def test_ema_after_one_half_life_is_halfway():
    state, out = FeatureState([1.0]), np.zeros(N_FEATURES, np.float32)
    state.update_quote(0, _quote(SEC, 99, 101, 1, 1), 0, out)  # mid 100
    state.update_quote(0, _quote(SEC + 1, 109, 111, 1, 1), 0, out)  # mid 110, 1 ns later
    state.update_quote(0, _quote(SEC + 1 + SEC, 109, 111, 1, 1), 0, out)  # 1 s at mid 110
    # EMA_1s moved halfway from 100 towards 110 (plus the 1 ns, negligibly).
    assert out[F["mid_vs_ema_1s_bp"]] == pytest.approx(1e4 * math.log(110 / 105), rel=1e-6)
    state.update_quote(0, _quote(SEC * 5000, 109, 111, 1, 1), 0, out)  # ~80 half-lives later
    assert abs(out[F["mid_vs_ema_60s_bp"]]) < 1e-3
    assert out[F["rv_10s_bp"]] < 1e-3  # realised vol decays away with quiet time


def test_trade_flow_signs_and_tick_rule():
    state, out = FeatureState([1.0]), np.zeros(N_FEATURES, np.float32)
    state.update_trade(0, _trade(SEC, 100, 5, Side.BID), 0, out)  # before any quote
    assert out[F["flow_1s"]] == 1.0 and out[F["trade_vs_mid_bp"]] == 0.0
    state.update_quote(0, _quote(SEC, 99, 101, 1, 1), 0, out)
    state.update_trade(0, _trade(SEC, 99, 15, Side.NONE), 0, out)  # below mid: a sell
    assert out[F["flow_1s"]] == pytest.approx((5 - 15) / 20)
    assert out[F["trade_vs_mid_bp"]] == pytest.approx(1e4 * math.log(0.99), rel=1e-6)
    state.update_trade(0, _trade(SEC, 101, 20, Side.ASK), 0, out)  # explicit seller wins
    assert out[F["flow_10s"]] == pytest.approx((5 - 15 - 20) / 40)


def test_bad_quote_is_rejected_and_counted():
    state, out = FeatureState([1.0]), np.zeros(N_FEATURES, np.float32)
    state.update_quote(0, _quote(SEC, 99, 101, 3, 1), 0, out)
    before = state.sf.copy(), state.si.copy()
    kept = out.copy()
    for bad in (
        _quote(2 * SEC, 102, 101, 1, 1),
        _quote(2 * SEC, 0, 1, 1, 1),
        _quote(2 * SEC, 9, 11, -1, 1),
    ):
        out[:] = -7.0
        assert not state.update_quote(0, bad, 0, out)
        assert np.array_equal(out, kept)  # previous features, not garbage
    assert not state.update_trade(0, _trade(2 * SEC, -5, 1, Side.BID), 0, out)
    assert state.rejected(0) == 4
    assert np.array_equal(state.sf, before[0])
    assert np.array_equal(np.delete(state.si, 4, axis=1), np.delete(before[1], 4, axis=1))


def test_locked_book_and_empty_sizes_stay_finite():
    state, out = FeatureState([1.0]), np.zeros(N_FEATURES, np.float32)
    state.update_quote(0, _quote(SEC, 100, 100, 0, 0), 0, out)
    assert np.isfinite(out).all() and out[F["micro_vs_mid"]] == 0 and out[F["imbalance"]] == 0


def test_instruments_do_not_share_state():
    state, out = FeatureState([1.0, 1.0]), np.zeros(N_FEATURES, np.float32)
    state.update_quote(0, _quote(SEC, 99, 101, 5, 1), 0, out)
    state.update_quote(1, _quote(SEC, 49, 51, 1, 5), 0, out)
    state.update_quote(0, _quote(2 * SEC, 100, 102, 5, 1), 0, out)
    assert out[F["ret_bp"]] == pytest.approx(1e4 * math.log(101 / 100), rel=1e-6)
    assert state.features(1)[F["imbalance"]] == pytest.approx(-4 / 6)


def test_feature_names():
    assert N_FEATURES == len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 14


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: FeatureState([0.01, 0.0]), r"tick_sizes\[1\] = 0.0"),
        (lambda: FeatureState([]), "non-empty"),
        (lambda: FeatureState([1.0]).scan(np.zeros(2, TRADE_DTYPE), np.zeros(2), np.zeros(0, TRADE_DTYPE), np.zeros(0)), "QUOTE dtype"),
        (lambda: FeatureState([1.0]).scan(np.zeros(2, QUOTE_DTYPE), np.array([0, 1]), np.zeros(0, TRADE_DTYPE), np.zeros(0)), "rows outside 0..0"),
        (lambda: FeatureState([1.0]).scan(np.zeros(2, QUOTE_DTYPE), np.zeros(3), np.zeros(0, TRADE_DTYPE), np.zeros(0)), "quote_rows has shape"),
    ],
)  # fmt: skip
def test_bad_inputs_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_live_update_bounds_are_checked():
    # numba does not bounds-check; the update must, or memory is corrupted silently.
    state, out = FeatureState([1.0, 1.0]), np.zeros(N_FEATURES, np.float32)
    q, t = _quote(SEC, 99, 101, 1, 1), _trade(SEC, 100, 1, Side.BID)
    for call in (
        lambda: state.update_quote(2, q, 0, out),
        lambda: state.update_quote(-1, q, 0, out),
        lambda: state.update_quote(0, q, 1, out),
        lambda: state.update_quote(0, q, 0, np.zeros(N_FEATURES - 1, np.float32)),
        lambda: state.update_trade(0, t, 3, out),
        lambda: state.update_trade(5, t, 0, out),
    ):
        with pytest.raises(IndexError, match="feature update"):
            call()
    assert state.si.sum() == 0  # nothing was applied


def test_unsorted_input_is_merged_by_ts_recv_as_live(market):
    # Out-of-order input takes the argsort merge; it must still equal the live updates.
    quotes, qrows, trades, trows = market
    rng = np.random.default_rng(3)
    qp, tp = rng.permutation(len(quotes)), rng.permutation(len(trades))
    shuffled = quotes[qp], qrows[qp], trades[tp], trows[tp]
    scan = FeatureState(TICKS).scan(*shuffled)
    live = _live(FeatureState(TICKS), *shuffled)
    assert np.array_equal(scan[0], live[0]) and np.array_equal(scan[1], live[1])


def test_scan_writes_into_the_callers_buffers(market):
    quotes, _, trades, _ = market
    want = FeatureState(TICKS).scan(*market)
    bufs = (np.full((len(quotes) + 5, N_FEATURES), np.nan, np.float32),
            np.full((len(trades) + 1, N_FEATURES), np.nan, np.float32))  # fmt: skip
    got = FeatureState(TICKS).scan(*market, out=bufs)
    assert np.shares_memory(got[0], bufs[0]) and np.shares_memory(got[1], bufs[1])
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert np.isnan(bufs[0][len(quotes) :]).all()  # nothing written past the rows


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((299, N_FEATURES), np.float32),  # a row short
        np.zeros((300, N_FEATURES), np.float64),
        np.zeros((300, N_FEATURES + 1), np.float32),
        np.zeros((N_FEATURES, 300), np.float32).T,  # not C-contiguous
    ],
)
def test_scan_refuses_a_buffer_the_kernel_would_overrun(market, bad):
    trades_buf = np.zeros((len(market[2]), N_FEATURES), np.float32)
    state = FeatureState(TICKS)
    with pytest.raises(ValueError, match="scan out"):
        state.scan(*market, out=(bad, trades_buf))
    assert state.si.sum() == 0  # refused before anything was applied
