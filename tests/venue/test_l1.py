"""The L1 venue's fill rules, case by case, with a scripted strategy (its targets given quote
by quote) so every fill, price and count is computed by hand."""

from types import SimpleNamespace

import numba as nb
import numpy as np
import pytest

from redline.feeds.events import QUOTE_DTYPE, Flag
from redline.venue.backtest import Backtest
from redline.venue.latency import Latency
from redline.venue.orders import Kind, Orders, Status

US = 1_000


@nb.njit
def scripted_step(state, p, bid_px, ask_px, position) -> int:
    """state: [quotes seen, target at quote 0, 1, ...]; past the script, keep the position."""
    i = int(state[0])
    state[0] += 1
    return int(state[1 + i]) if 1 + i < state.shape[0] else position


def scripted(targets):
    def new_state(params, n):
        return np.array([[0.0, *targets]] * n)

    return SimpleNamespace(step=scripted_step, new_state=new_state)


def run(rows, targets, kind="limit", offset=0, latency=None, fee_bps=0.0, maker_bps=0.0):
    """rows of (t µs, bid, ask[, bid size, ask size[, flags]])"""
    q = np.zeros(len(rows), QUOTE_DTYPE)
    for i, r in enumerate(rows):
        q[i]["ts_recv"] = q[i]["ts_event"] = r[0] * US
        q[i]["bid_px"], q[i]["ask_px"] = r[1], r[2]
        q[i]["bid_sz"], q[i]["ask_sz"] = (r[3], r[4]) if len(r) > 3 else (10, 10)
        q[i]["flags"] = r[5] if len(r) > 5 else 0
        q[i]["instrument_id"], q[i]["seq"] = 1, i
    params = SimpleNamespace(vector=lambda: np.zeros(0))
    bt = Backtest(scripted(targets), params, latency or Latency(), [1], fee_bps=fee_bps,
                  maker_bps=maker_bps, orders=Orders(kind=kind, offset=offset))  # fmt: skip
    bt.feed(q)
    return bt.finish()


def test_a_resting_buy_fills_at_its_own_price_up_to_the_shown_size_and_reaches_the_position():
    rows = [(0, 100, 102), (10, 100, 102), (20, 99, 100, 10, 2), (30, 98, 99, 10, 5)]
    r = run(rows, [3, 3, 3, 3], maker_bps=10.0)
    (o,) = r.executions  # one order: buy 3 at the bid, 100
    assert (o["kind"], o["limit_px"], o["qty_ordered"]) == (Kind.LIMIT, 100, 3)
    # 20 µs: the ask reaches 100 showing 2 -> 2 at 100; 30 µs: ask 99 -> the last 1, at 100
    assert (o["status"], o["qty"], o["px"]) == (Status.FILLED, 3, 100.0)
    assert o["ts_ack"] == 30 * US and r.figures["position"] == {1: 3}
    assert r.figures["fees"] == pytest.approx(3 * 100 * 10e-4)  # maker fee on both fills


def test_ioc_takes_what_is_shown_on_arrival_and_the_same_lots_never_fill_twice():
    # Both orders arrive (15 and 25 µs) before the quote of 30 µs: both meet the quote of 10 µs,
    # which shows 4 at 102. The first takes 3, the second finds 1 of its 2: the rest is gone.
    rows = [(0, 100, 102), (10, 100, 102, 10, 4), (30, 100, 102)]
    r = run(rows, [3, 5], kind="ioc", offset=2, latency=Latency(entry_us=15), fee_bps=10.0)
    a, b = r.executions
    assert (a["status"], a["qty"], a["px"]) == (Status.FILLED, 3, 102.0)
    assert (b["status"], b["qty_ordered"], b["qty"], b["px"]) == (Status.EXPIRED, 2, 1, 102.0)
    assert r.figures["position"] == {1: 4}
    assert r.figures["fees"] == pytest.approx(4 * 102 * 10e-4)  # taker fee: both crossed


def test_post_only_is_refused_if_it_would_cross_and_rests_if_not():
    # (past its script the strategy keeps what it has: one order each)
    crossing = run([(0, 100, 102), (10, 100, 102)], [1], kind="post_only", offset=2)
    assert crossing.executions["status"].tolist() == [Status.POST_ONLY_CROSSED]
    assert crossing.figures["post_only_crossed"] == 1 and crossing.figures["position"] == {1: 0}
    passive = run([(0, 100, 102), (10, 100, 102)], [1], kind="post_only", offset=1)
    assert passive.executions["status"].tolist() == [Status.RESTING]  # bid 101 < ask 102
    assert passive.figures["resting_at_end"] == 1


def test_an_order_arriving_in_a_data_gap_fills_at_the_first_price_after_it():
    rows = [(0, 100, 102), (1000, 200, 202, 10, 10, Flag.GAP_BEFORE)]
    gap = run(rows, [1, 1], kind="market", latency=Latency(entry_us=5))
    assert gap.executions["px"].tolist() == [202.0]
    no_gap = run([rows[0], rows[1][:5]], [1, 1], kind="market", latency=Latency(entry_us=5))
    assert no_gap.executions["px"].tolist() == [102.0]  # the book as of 5 µs, no gap known


def test_entry_latency_moves_a_resting_fill_to_the_later_quote():
    # A buy at 100: at once it rests before the ask touches 100 at 10 µs; 15 µs late it finds
    # the ask back at 102 (quote of 12 µs), rests, and fills when it touches again at 30 µs.
    rows = [(0, 100, 102), (10, 99, 100, 10, 1), (12, 100, 102), (30, 99, 100, 10, 1)]
    fast = run(rows, [1])
    slow = run(rows, [1], latency=Latency(entry_us=15))
    assert fast.executions["ts_ack"].tolist() == [10 * US]
    assert slow.executions["ts_ack"].tolist() == [30 * US]
    assert fast.executions["px"].tolist() == slow.executions["px"].tolist() == [100.0]
    assert fast.figures["position"] == slow.figures["position"] == {1: 1}


def test_a_cancel_that_arrives_after_the_fill_does_nothing_and_is_counted():
    # Bought 1 at 100 at 10 µs, but the ack takes 50 µs: at 20 µs the strategy, wanting 0,
    # still believes it rests and cancels it; the cancel finds it filled.
    rows = [(0, 100, 102), (10, 99, 100), (20, 99, 101), (30, 99, 101), (70, 99, 101)]
    r = run(rows, [1, 1, 0, 0, 1], latency=Latency(ack_us=50))
    assert r.executions["status"].tolist() == [Status.FILLED]
    assert (r.figures["cancels"], r.figures["cancels_too_late"]) == (1, 1)
    assert r.figures["position"] == {1: 1}


def test_a_new_target_cancels_the_resting_order_and_sends_the_new_one():
    rows = [(0, 100, 102), (10, 100, 102), (20, 100, 102), (30, 101, 102)]
    r = run(rows, [1, 2, 2, 2])
    first, second = r.executions
    assert (first["status"], first["qty"]) == (Status.CANCELLED, 0)
    assert (second["status"], second["qty_ordered"], second["limit_px"]) == (Status.RESTING, 2, 100)
    assert (r.figures["cancels"], r.figures["cancels_too_late"]) == (1, 0)
