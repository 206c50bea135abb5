import math

import numpy as np

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
