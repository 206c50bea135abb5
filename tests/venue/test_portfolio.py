import math

import numpy as np
import pytest

from redline.venue.orders import EXECUTION_DTYPE
from redline.venue.portfolio import YEAR_NS, summary


def test_drawdown_sharpe_turnover_and_fill_ratio_by_hand():
    ex = np.zeros(2, EXECUTION_DTYPE)
    ex["instrument_id"] = 1
    ex["qty_ordered"], ex["qty"], ex["px"], ex["fee"] = [4, -2], [2, -2], [100, 110], [0.5, 0.25]
    bars = np.array([0.0, 10.0, 4.0, 8.0])  # peak 10, then down to 4: drawdown 6
    s = summary(ex, np.arange(4), bars, final_equity=12.0, value={1: 0.5}, bar_ns=YEAR_NS // 4)
    assert s["max_drawdown"] == 6.0 and s["pnl"] == 12.0 and s["fees"] == 0.75
    assert s["turnover"] == 2 * 100 * 0.5 + 2 * 110 * 0.5
    assert s["fill_ratio"] == 4 / 6 and (s["orders"], s["fills"]) == (2, 2)
    r = np.diff([0.0, 10.0, 4.0, 8.0, 12.0])
    assert math.isclose(s["sharpe"], r.mean() / r.std() * 2.0)  # 4 bars a year: sqrt(4)


def test_a_flat_curve_has_no_sharpe_and_the_hash_follows_the_log():
    ex = np.zeros(1, EXECUTION_DTYPE)
    ex["instrument_id"] = 1
    a = summary(ex, np.arange(3), np.zeros(3), 0.0, {1: 1.0}, 10**9)
    assert math.isnan(a["sharpe"]) and a["max_drawdown"] == 0.0
    ex["px"] = 1
    b = summary(ex, np.arange(3), np.zeros(3), 0.0, {1: 1.0}, 10**9)
    assert a["journal_sha256"] != b["journal_sha256"]


def test_inverse_contract_pnl_is_in_the_coin_by_hand():
    # COIN-M style: face 10 USD, tick 0.5 -> value -10 / 0.5 = -20. Buy 100 at 40,000 (80,000
    # ticks), sell 100 at 50,000: 100 * 10 * (1/40000 - 1/50000) = 0.005 coin, less taker fees
    # of 10 bp on 100 * 10 / 40000 = 0.025 and 100 * 10 / 50000 = 0.02 coin traded.
    from types import SimpleNamespace

    import numba as nb

    from redline.feeds.events import QUOTE_DTYPE
    from redline.venue.backtest import Backtest
    from redline.venue.latency import Latency

    @nb.njit
    def step(state, p, bid_px, ask_px, position):
        state[0] += 1
        return 100 if state[0] == 1 else 0

    module = SimpleNamespace(step=step, new_state=lambda params, n: np.zeros((n, 1)))
    q = np.zeros(3, QUOTE_DTYPE)
    q["ts_recv"] = [0, 1000, 2000]
    q["bid_px"], q["ask_px"] = [79_998, 100_000, 100_000], [80_000, 100_002, 100_002]
    q["bid_sz"], q["ask_sz"], q["instrument_id"] = 1000, 1000, 1
    bt = Backtest(module, SimpleNamespace(vector=lambda: np.zeros(0)), Latency(), [1],
                  value_per_tick={1: -20.0}, fee_bps=10.0)  # fmt: skip
    bt.feed(q)
    r = bt.finish()
    assert r.executions["px"].tolist() == [80_000, 100_000]
    assert r.figures["fees"] == pytest.approx((0.025 + 0.02) * 1e-3)
    assert r.figures["pnl"] == pytest.approx(0.005 - 0.045e-3)
    assert r.figures["turnover"] == pytest.approx(0.045)
    assert r.figures["position"] == {1: 0}


def test_inverse_marks_an_open_position_at_the_mid():
    from redline.venue.portfolio import mark, notional, paid

    # long 100 of face 10 at 40,000; mid 50,000 (ticks of 0.5): worth -100 * 10 / 50000 coin
    # against the +100 * 10 / 40000 its purchase left in cash
    assert -paid(100, 80_000, -20.0) + mark(100, 100_000, -20.0) == pytest.approx(0.005)
    assert notional(-3, 100, 0.5) == 150.0 and mark(2, 100.0, 0.5) == 100.0
