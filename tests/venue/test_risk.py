"""Pre-trade risk: each check refuses what it should and lets the rest through, by hand; a
refused order is logged with its reason and never sent."""

import numpy as np
import pytest

from redline.feeds.events import QUOTE_DTYPE
from redline.strategies.ema_cross import Params
from redline.venue import risk
from redline.venue.backtest import Backtest
from redline.venue.latency import Latency
from redline.venue.orders import Status
from redline.venue.risk import Risk


def check(limits, have=0, q=1, px=100, limit=True, mid=100.0, value=1.0, equity=0.0, t=0,
          ring=None):  # fmt: skip
    window, cursor = ring or limits.new_window(1)
    return risk.check(limits.vector(), 0, have, q, px, limit, mid, value, equity, t, window,
                      cursor)  # fmt: skip


@pytest.mark.parametrize(
    ("limits", "kw", "why"),
    [
        (Risk(state="halted"), {"q": -1, "have": 1}, Status.HALTED),
        (Risk(state="reducing"), {"have": 2, "q": -1}, 0),  # 2 -> 1
        (Risk(state="reducing"), {"have": 2, "q": -3}, Status.REDUCING),  # 2 -> -1: crosses 0
        (Risk(state="reducing"), {"have": 0, "q": 1}, Status.REDUCING),
        (Risk(kill_loss=50.0), {"equity": -49.0}, 0),
        (Risk(kill_loss=50.0), {"equity": -50.0}, Status.KILL_SWITCH),
        (Risk(max_position=3), {"have": 2, "q": 1}, 0),
        (Risk(max_position=3), {"have": 2, "q": 2}, Status.MAX_POSITION),
        (Risk(max_position=3), {"have": 3, "q": -6}, 0),  # 3 -> -3
        (Risk(max_notional=1000.0), {"q": 5, "px": 100, "value": 2.0}, 0),  # 1000
        (Risk(max_notional=1000.0), {"q": -6, "px": 100, "value": 2.0}, Status.MAX_NOTIONAL),
        (Risk(band_bps=100.0), {"px": 101, "mid": 100.0}, 0),  # 1% of 100: 1 tick away
        (Risk(band_bps=100.0), {"px": 98, "mid": 100.0}, Status.PRICE_BAND),
        (Risk(band_bps=100.0), {"px": 98, "mid": 100.0, "limit": False}, 0),  # market: no band
    ],
)
def test_each_check_by_hand(limits, kw, why):
    assert check(limits, **kw) == why


def test_the_kill_switch_stays_tripped():
    limits = Risk(kill_loss=10.0)
    r = limits.vector()
    w, c = limits.new_window(1)
    assert risk.check(r, 0, 0, 1, 100, False, 100.0, 1.0, -10.0, 0, w, c) == Status.KILL_SWITCH
    assert risk.check(r, 0, 0, 1, 100, False, 100.0, 1.0, 5.0, 1, w, c) == Status.KILL_SWITCH


def test_order_rate_is_a_sliding_second_per_instrument():
    limits = Risk(max_orders_per_s=2)
    r, (w, c) = limits.vector(), limits.new_window(1)
    s = 1_000_000_000
    got = [risk.check(r, 0, 0, 1, 100, False, 100.0, 1.0, 0.0, t, w, c)
           for t in (0, s // 2, s - 1, s, s + s // 2)]  # fmt: skip
    # 2 in [0, 1 s); the third at 1 s - 1 ns is refused (and takes no slot); at 1 s the one
    # of 0 ns has left the window; at 1.5 s the one of 0.5 s has too
    assert got == [0, 0, Status.ORDER_RATE, 0, 0]


def test_a_halted_backtest_sends_nothing_and_logs_every_refusal():
    q = np.zeros(5, QUOTE_DTYPE)
    q["ts_recv"] = np.arange(5) * 1000
    q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"], q["instrument_id"] = 100, 102, 10, 10, 1
    bt = Backtest("ema_cross", Params(every=1), Latency(), [1], risk=Risk(state="halted"))
    bt.feed(q)
    r = bt.finish()
    # every quote wants -1 (mid at its EMA) and has 0: five refused orders, none sent
    assert r.executions["status"].tolist() == [Status.HALTED] * 5
    assert r.figures["refused"] == 5 and r.figures["refused_by_reason"]["halted"] == 5
    assert r.figures["orders"] == 0 and r.figures["position"] == {1: 0}


@pytest.mark.parametrize(
    ("text", "expect"),
    [("max_position=-1", "--risk 'max_position=-1'"), ("state=off", "valid: active"),
     ("maxpos=1", "a key of max_position")],
)  # fmt: skip
def test_bad_risk_text_is_one_line_naming_it(text, expect):
    with pytest.raises(ValueError, match=expect):
        Risk.parse(text)
    assert Risk.parse("max_position=5,state=reducing") == Risk(max_position=5, state="reducing")
