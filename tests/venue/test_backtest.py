"""The L1 venue and the backtest loop, case by case, each figure computed by hand."""

import json

import numpy as np
import pytest

from redline.feeds.events import QUOTE_DTYPE
from redline.strategies.ema_cross import Params
from redline.venue.backtest import Backtest
from redline.venue.latency import Latency
from redline.venue.orders import Kind, Orders, Status

US = 1_000


def quotes(rows, instrument=1):
    """rows of (t µs, bid, ask[, bid size, ask size])"""
    q = np.zeros(len(rows), QUOTE_DTYPE)
    for i, r in enumerate(rows):
        q[i]["ts_recv"] = q[i]["ts_event"] = r[0] * US
        q[i]["bid_px"], q[i]["ask_px"] = r[1], r[2]
        q[i]["bid_sz"], q[i]["ask_sz"] = (r[3], r[4]) if len(r) > 3 else (10, 10)
        q[i]["instrument_id"], q[i]["seq"] = instrument, i
    return q


# every=1: the first quote sells (its mid equals the EMA seeded with it); later mids above the
# EMA want to buy back.
RISING = [(0, 100, 102), (10, 104, 106), (20, 110, 112), (30, 111, 113)]


def run(rows, latency=None, qty=1, fee_bps=0.0, chunks=1):
    lat = latency or Latency()
    bt = Backtest("ema_cross", Params(every=1, qty=qty), lat, [1], fee_bps=fee_bps)
    q = quotes(rows)
    for part in np.array_split(q, chunks):
        bt.feed(part)
    return bt.finish()


def test_without_latency_an_order_fills_at_the_book_it_was_decided_on():
    r = run(RISING)
    first = r.executions[0]
    assert (first["qty_ordered"], first["qty"], first["px"]) == (-1, -1, 100)  # sold at the bid
    assert first["ts_venue"] == 0


def test_entry_latency_moves_the_fill_to_the_later_price():
    r = run(RISING, Latency(entry_us=15))
    first = r.executions[0]
    assert first["ts_decision"] == 0 and first["ts_venue"] == 15 * US
    assert first["px"] == 104  # the book at 15 µs is the quote of 10 µs


def test_a_partial_fill_reaches_the_position_and_the_rest_is_ordered_again():
    rows = [(0, 100, 102, 1, 10), (10, 100, 102, 1, 10), (20, 100, 102, 5, 10)]
    r = run(rows, qty=3)
    ex = r.executions
    assert ex["qty_ordered"].tolist() == [-3, -2, -1]  # 1 of 3 filled, then 1 of the 2 left
    assert ex["qty"].tolist() == [-1, -1, 0]  # the last one was still on its way at the end
    assert r.figures["position"] == {1: -2} and r.figures["in_flight_at_end"] == 1


def test_pnl_and_fees_by_hand():
    r = run(RISING, fee_bps=10.0)
    # sold 1 at 100 (fee 0.1); then bought back 2 at 106 when the mid rose above its EMA
    # (fee 0.212): position +1; final mid 112 -> equity 100 - 212 + 112 - 0.312
    ex = r.executions
    assert ex["qty"].tolist()[:2] == [-1, 2] and ex["px"].tolist()[:2] == [100, 106]
    assert r.figures["fees"] == pytest.approx(0.1 + 0.212)
    assert r.figures["pnl"] == pytest.approx(100 - 212 + 112 - 0.312)
    assert r.figures["position"] == {1: 1}


def test_chunks_change_nothing_and_the_log_hash_is_stable():
    rng = np.random.default_rng(5)
    bid = 1000 + np.cumsum(rng.integers(-1, 2, 3000))
    rows = [(t, int(b), int(b) + 2) for t, b in enumerate(bid)]
    lat = Latency(decision_us=3, entry_us=4, ack_us=2)
    whole, parts = run(rows, lat, chunks=1), run(rows, lat, chunks=7)
    np.testing.assert_array_equal(whole.executions, parts.executions)
    assert whole.figures["journal_sha256"] == parts.figures["journal_sha256"]
    assert whole.figures["fills"] > 10


def test_orders_still_in_flight_when_the_data_ends_are_counted_unfilled():
    r = run(RISING, Latency(entry_us=1_000_000))
    assert r.figures["in_flight_at_end"] == len(r.executions) > 0
    assert (r.executions["qty"] == 0).all() and r.figures["pnl"] == 0.0


def test_an_instrument_not_in_the_run_is_refused_by_id():
    bt = Backtest("ema_cross", Params(), Latency(), [1])
    with pytest.raises(ValueError, match="instrument 7 is not in"):
        bt.feed(quotes(RISING, instrument=7))


def test_market_maker_rests_both_sides_fills_and_requotes_by_hand():
    from redline.strategies import market_maker

    rows = [(0, 100, 104, 1, 3), (10, 100, 104, 1, 3), (20, 99, 100, 5, 2), (30, 99, 100, 5, 2)]
    bt = Backtest("market_maker", market_maker.Params(), Latency(), [1], maker_bps=-1.0)
    bt.feed(quotes(rows))
    r = bt.finish()
    ex = r.executions
    # 0 µs: microprice 101 -> bid 1 at 100, ask 1 at 102 (post-only, both rest at 10 µs);
    # 10 µs: the same quotes, kept. 20 µs: the ask reaches our bid: 1 filled at 100 (a maker
    # rebate of 1 bp); long 1, microprice (99 * 2 + 100 * 5) / 7 = 99.71, fair 99.21: a new bid
    # at 98 and the ask moved to 101 (cancel + new); both land by 30 µs.
    assert ex["limit_px"].tolist() == [100, 102, 98, 101]
    assert ex["qty_ordered"].tolist() == [1, -1, 1, -1]
    assert ex["status"].tolist() == [Status.FILLED, Status.CANCELLED, Status.RESTING,
                                     Status.RESTING]  # fmt: skip
    assert (ex["kind"] == Kind.POST_ONLY).all()
    assert r.figures["position"] == {1: 1} and r.figures["cancels"] == 1
    assert r.figures["fees"] == pytest.approx(-100 * 1e-4)
    # cash -100 + 0.01 rebate, 1 lot at the last mid 99.5
    assert r.figures["pnl"] == pytest.approx(-100 + 0.01 + 99.5)


def test_a_quoting_strategy_takes_no_other_order_kind():
    from redline.strategies import market_maker

    with pytest.raises(ValueError, match="market_maker quotes post-only orders; drop --orders"):
        Backtest("market_maker", market_maker.Params(), Latency(), [1], orders=Orders())


def test_full_order_rows_or_ack_ring_stop_the_loop_which_grows_them_and_goes_on(monkeypatch):
    # The loop starts with room for a few order rows and acks and asks for more when they run
    # out mid-chunk (l1.room): the run must be the one with plenty of room from the start.
    from redline.strategies import market_maker
    from redline.venue import backtest, l1

    rng = np.random.default_rng(3)
    bid = 1000 + np.cumsum(rng.integers(-2, 3, 2000))
    q = quotes([(t, int(b), int(b) + 2) for t, b in enumerate(bid)])

    def one(lat):
        bt = Backtest("market_maker", market_maker.Params(), lat, [1])
        bt.feed(q)
        return bt.finish()

    lat = Latency(entry_us=3, ack_us=5)
    roomy = one(lat)
    stops = []
    monkeypatch.setattr(backtest, "_ROWS_AHEAD", 2)
    monkeypatch.setattr(l1, "ACK_RING", 2)
    grow = Backtest._make_room
    monkeypatch.setattr(Backtest, "_make_room", lambda self: stops.append(1) or grow(self))
    tight = one(lat)
    assert len(stops) >= 10  # each buffer doubled several times mid-chunk
    assert len(roomy.executions) > 500 and roomy.figures["fills"] > 10
    np.testing.assert_array_equal(tight.executions, roomy.executions)
    # json: a NaN Sharpe (too few bars) equals itself there
    assert json.dumps(tight.figures, sort_keys=True) == json.dumps(roomy.figures, sort_keys=True)
