"""The L2 venue's fill rules and queue models, case by case, with a scripted strategy (its
targets given step by step: it steps at the end of each atomic batch of deltas) so every fill,
price, queue and count is computed by hand."""

import json
import math
from types import SimpleNamespace

import numba as nb
import numpy as np
import pytest

from redline.feeds.events import BOOK_DELTA_DTYPE, TRADE_DTYPE, BookAction, Flag, Side
from redline.venue.l2_backtest import L2Backtest
from redline.venue.latency import Latency
from redline.venue.orders import Orders, Status

US = 1_000
B, A = Side.BID, Side.ASK
SNAP, LAST, GAP = Flag.SNAPSHOT, Flag.LAST, Flag.GAP_BEFORE


@nb.njit
def scripted_step(state, p, bid_px, ask_px, position) -> int:
    """state: [steps so far, target at step 0, 1, ...]; past the script, keep the position."""
    i = int(state[0])
    state[0] += 1
    return int(state[1 + i]) if 1 + i < state.shape[0] else position


def scripted(targets):
    return SimpleNamespace(
        step=scripted_step, new_state=lambda params, n: np.array([[0.0, *targets]] * n)
    )


def book(t, bids, asks, flags=0):
    """A snapshot at t µs: CLEAR, then the levels, the last one flagged LAST."""
    rows = [("d", t, B, 0, 0, BookAction.CLEAR, SNAP | flags)]
    rows += [("d", t, B, px, sz, BookAction.ADD, SNAP) for px, sz in bids]
    rows += [("d", t, A, px, sz, BookAction.ADD, SNAP) for px, sz in asks]
    rows[-1] = (*rows[-1][:6], SNAP | LAST)
    return rows


def level(t, side, px, sz, flags=LAST):
    return [("d", t, side, px, sz, BookAction.UPDATE if sz else BookAction.DELETE, flags)]


def trade(t, aggressor, px, sz):
    return [("t", t, aggressor, px, sz)]


def events(rows):
    """Batches of BOOK_DELTA / TRADE records, in the order given."""
    out = []
    for seq, r in enumerate(rows):
        dtype = TRADE_DTYPE if r[0] == "t" else BOOK_DELTA_DTYPE
        rec = np.zeros(1, dtype)
        rec["ts_recv"] = rec["ts_event"] = r[1] * US
        rec["instrument_id"], rec["seq"] = 1, seq
        if r[0] == "t":
            rec["aggressor"], rec["px"], rec["sz"] = r[2], r[3], r[4]
        else:
            rec["side"], rec["px"], rec["sz"], rec["action"], rec["flags"] = r[2:7]
        if out and out[-1].dtype == dtype:
            out[-1] = np.concatenate([out[-1], rec])
        else:
            out.append(rec)
    return out


def run(rows, targets, kind="limit", offset=0, latency=None, queue="risk_averse", power=2.0,
        maker_bps=0.0, fee_bps=0.0, step_ns=0, batches=None):  # fmt: skip
    params = SimpleNamespace(vector=lambda: np.zeros(0))
    bt = L2Backtest(scripted(targets), params, latency or Latency(), [1], queue=queue,
                    power=power, window_ticks=1024, orders=Orders(kind=kind, offset=offset),
                    maker_bps=maker_bps, fee_bps=fee_bps, step_ns=step_ns)  # fmt: skip
    for batch in events(rows) if batches is None else batches:
        bt.feed(batch)
    return bt.finish()


START = book(0, [(100, 5)], [(102, 5)])  # bid 5 at 100, ask 5 at 102


def test_a_second_trade_of_equal_size_at_our_price_fills_us():
    # Our buy 1 at 100 joins behind the 5 shown. A sell of 5 at 100 takes the 5 ahead (no
    # fill); 5 more join behind us; the second sell of 5 fills us first.
    rows = START + trade(10, A, 100, 5) + level(15, B, 100, 5) + trade(20, A, 100, 5)
    first_only = run(START + trade(10, A, 100, 5) + level(15, B, 100, 5), [1])
    assert first_only.executions["qty"].tolist() == [0]
    assert first_only.figures["queue_ahead_at_end"] == [0.0]
    r = run(rows, [1], maker_bps=10.0)
    (o,) = r.executions
    assert (o["status"], o["qty"], o["px"], o["ts_ack"]) == (Status.FILLED, 1, 100.0, 20 * US)
    assert r.figures["fees"] == pytest.approx(100 * 10e-4)  # maker
    # a buyer's trade at 100 never reaches our bid
    lifted = run(START + trade(10, B, 100, 5) + trade(20, B, 100, 5), [1])
    assert lifted.executions["qty"].tolist() == [0]


def test_a_partial_fill_reaches_the_position_and_the_rest_keeps_its_place():
    # buy 3 at 100 behind 5; a sell of 7 at 100: 5 ahead, then 2 of ours
    rows = START + trade(10, A, 100, 7) + level(20, B, 100, 1) + level(30, B, 100, 4)
    r = run(rows, [3, 3, 3])
    (o,) = r.executions
    assert (o["status"], o["qty_ordered"], o["qty"]) == (Status.RESTING, 3, 2)
    assert r.figures["position"] == {1: 2}
    assert r.figures["queue_ahead_at_end"] == [0.0]  # first in line for the last lot


def test_marketable_orders_walk_the_levels_and_the_same_liquidity_never_fills_twice():
    # asks: 2 at 102, 2 at 103, 10 at 104. A market buy of 3 takes 2 @102 and 1 @103; 5 µs
    # later (no ask delta between) a buy of 3 more finds 1 left at 103, then 2 @104.
    asks = [(102, 2), (103, 2), (104, 10)]
    rows = book(0, [(100, 5)], asks) + level(5, B, 100, 6) + level(50, B, 100, 7)
    r = run(rows, [3, 6], kind="market", latency=Latency(entry_us=1), fee_bps=10.0)
    a, b = r.executions
    assert (a["qty"], a["px"]) == (3, pytest.approx((2 * 102 + 103) / 3))
    assert (b["qty"], b["px"]) == (3, pytest.approx((103 + 2 * 104) / 3))
    assert r.figures["position"] == {1: 6}
    assert r.figures["fees"] == pytest.approx((2 * 102 + 2 * 103 + 2 * 104) * 10e-4)


def test_a_limit_order_walks_up_to_its_price_and_rests_the_rest():
    # buy 5 at 103 (offset 3 above the bid 100): 2 @102, 2 @103, then 1 rests at 103
    asks = [(102, 2), (103, 2), (104, 10)]
    r = run(book(0, [(100, 5)], asks) + level(50, B, 100, 7), [5], offset=3)
    (o,) = r.executions
    assert (o["status"], o["qty"], o["limit_px"]) == (Status.RESTING, 4, 103)
    ioc = run(book(0, [(100, 5)], asks) + level(50, B, 100, 7), [5], kind="ioc", offset=3)
    assert (ioc.executions[0]["status"], ioc.executions[0]["qty"]) == (Status.EXPIRED, 4)


def test_an_ask_that_comes_down_to_our_bid_fills_us_from_what_it_shows():
    # buy 3 at 100; the asks come down to 100 showing 2: 2 fill at 100 (a level crossing)
    rows = START + level(10, A, 102, 0, flags=0) + level(10, A, 100, 2) + level(20, B, 99, 1)
    r = run(rows, [3])
    (o,) = r.executions
    assert (o["qty"], o["px"], o["status"]) == (2, 100.0, Status.RESTING)


def test_an_order_arriving_in_a_data_gap_fills_at_the_first_price_after_it():
    # market buy decided at 0, at the venue at 5 µs; a gap is flagged at 1 µs; the book after
    # it (snapshot at 100 µs) asks 202
    after = book(100, [(200, 5)], [(202, 5)])
    gap = run(START + level(1, B, 100, 4, flags=LAST | GAP) + after, [1, 1, 1], kind="market",
              latency=Latency(entry_us=5))  # fmt: skip
    assert gap.executions["px"].tolist() == [202.0]
    assert gap.executions["ts_ack"].tolist() == [100 * US]
    assert gap.figures["arrivals_held_for_gap"] == 1
    no_gap = run(START + level(1, B, 100, 4) + after, [1, 1, 1], kind="market",
                 latency=Latency(entry_us=5))  # fmt: skip
    assert no_gap.executions["px"].tolist() == [102.0]  # the book as of 5 µs


def test_entry_latency_moves_a_fill_to_the_later_price():
    moved = START + level(10, A, 102, 0, flags=0) + level(10, A, 104, 5) + level(30, B, 100, 6)
    fast = run(moved, [1, 1, 1], kind="market")
    slow = run(moved, [1, 1, 1], kind="market", latency=Latency(entry_us=15))
    assert fast.executions["px"].tolist() == [102.0]
    assert slow.executions["px"].tolist() == [104.0]
    assert slow.executions["ts_venue"].tolist() == [15 * US]


# The probabilistic queue: our buy 1 at 100 joins behind 10; 6 join behind us (16 shown);
# then 5 are cancelled (16 -> 11). Of the 5, the share from ahead is f(10) / (f(10) + f(6)).
GROW_SHRINK = book(0, [(100, 10)], [(102, 5)]) + level(10, B, 100, 16) + level(20, B, 100, 11)


@pytest.mark.parametrize(
    ("queue", "ahead"),
    [
        ("risk_averse", 10.0),  # cancels never advance us
        ("power", 10 - 5 * 100 / 136),  # n = 2: 10^2 / (10^2 + 6^2)
        ("log", 10 - 5 * math.log(11) / (math.log(11) + math.log(7))),
    ],
)
def test_queue_ahead_after_a_decrease_by_model(queue, ahead):
    r = run(GROW_SHRINK, [1], queue=queue)
    assert r.figures["queue_ahead_at_end"] == [pytest.approx(ahead)]


def test_a_decrease_that_trades_explain_moves_the_queue_once():
    # a sell of 2 at 100 takes 2 ahead (10 -> 8); the level then shows 16 - 2 - 3 = 11: only
    # 3 are cancels; of them 3 * 8^2 / (8^2 + 6^2) come from ahead
    rows = (book(0, [(100, 10)], [(102, 5)]) + level(10, B, 100, 16) + trade(15, A, 100, 2)
            + level(20, B, 100, 11))  # fmt: skip
    r = run(rows, [1], queue="power")
    assert r.figures["queue_ahead_at_end"] == [pytest.approx(8 - 3 * 64 / 100)]


def test_the_queue_ahead_never_exceeds_the_level():
    rows = book(0, [(100, 10)], [(102, 5)]) + level(10, B, 100, 3)
    r = run(rows, [1])
    assert r.figures["queue_ahead_at_end"] == [3.0]


def test_post_only_that_would_cross_is_refused():
    r = run(START + level(10, B, 100, 6), [1], kind="post_only", offset=2)
    assert r.executions["status"].tolist() == [Status.POST_ONLY_CROSSED]


def test_a_bad_queue_model_is_named():
    params = SimpleNamespace(vector=lambda: np.zeros(0))
    with pytest.raises(ValueError, match="--queue 'fifo': give one of risk_averse, power, log"):
        L2Backtest(scripted([1]), params, Latency(), [1], queue="fifo")


def test_a_sampled_decision_leg_and_a_recorded_entry_leg_move_the_fill(tmp_path):
    # the book moves from ask 102 to 104 at 10 µs. Decided at 0, the order leaves after the
    # decision leg (5 µs, drawn from the samples); the entry leg recorded at 0 -> 0 ns and
    # 10 µs -> 20 µs interpolates to 10 µs at 5 µs: at the venue at 15 µs, it buys at 104.
    moved = START + level(10, A, 102, 0, flags=0) + level(10, A, 104, 5) + level(30, B, 100, 6)
    path = tmp_path / "order_latency.csv"
    path.write_text("ts_ns,entry_ns,response_ns\n0,0,0\n10000,20000,0\n")
    decided = Latency().legs().with_decision(np.array([5 * US, 5 * US]), "samples")
    legs = decided.with_recorded("entry", path)
    r = run(moved, [1, 1, 1], kind="market", latency=legs)
    (o,) = r.executions
    assert (o["ts_decision"], o["ts_venue"], o["px"]) == (5 * US, 15 * US, 104.0)
    without_file = run(moved, [1, 1, 1], kind="market", latency=decided)
    assert without_file.executions["px"].tolist() == [102.0]  # at the venue at 5 µs


# A book update every 10 µs from 0 to 90 µs, then at 100, 150 and 250 µs.
TICKS = START + [r for t in (*range(10, 100, 10), 100, 150, 250) for r in level(t, B, 100, 6)]


def test_a_timer_steps_the_strategy_once_per_window_of_data_time():
    # 100 µs windows: the first whole book in [0, 100), [100, 200) and [200, 300) steps it
    every = run(TICKS, [1, 2, 3], kind="market")
    timed = run(TICKS, [1, 2, 3], kind="market", step_ns=100 * US)
    assert every.figures["decisions"] == 13
    assert every.executions["ts_decision"].tolist() == [0, 10 * US, 20 * US]
    assert timed.figures["decisions"] == 3
    assert timed.executions["ts_decision"].tolist() == [0, 100 * US, 250 * US]
    assert timed.figures["position"] == {1: 2}  # the last order meets no book after it


def test_a_timer_below_the_updates_spacing_steps_on_every_update():
    same = run(TICKS, [1, 2, 3], kind="market", step_ns=1)
    assert (
        same.figures["journal_sha256"]
        == run(TICKS, [1, 2, 3], kind="market").figures["journal_sha256"]
    )


@pytest.mark.parametrize("step_ns", [-1, 1.5])
def test_a_bad_timer_is_named(step_ns):
    params = SimpleNamespace(vector=lambda: np.zeros(0))
    with pytest.raises(ValueError, match=f"step_ns={step_ns}: give an int >= 0"):
        L2Backtest(scripted([1]), params, Latency(), [1], step_ns=step_ns)


def test_batches_in_any_cut_or_stride_give_the_same_run():
    # the queue test's events: one batch of deltas run as it is, batches of one record each
    # (merged as bytes, trades among them), and a strided view all give one journal
    rows = (book(0, [(100, 10)], [(102, 5)]) + level(10, B, 100, 16) + trade(15, A, 100, 2)
            + level(20, B, 100, 11) + trade(25, A, 100, 9))  # fmt: skip
    one_by_one = [b[i : i + 1] for b in events(rows) for i in range(len(b))]
    spaced = []
    for b in events(rows):
        twice = np.repeat(b, 2)
        spaced.append(twice[::2])  # not contiguous
    want = run(rows, [1], queue="power")
    assert want.executions["qty"].tolist() == [1]  # the last trade fills us
    for batches in (one_by_one, spaced):
        got = run(rows, [1], queue="power", batches=batches)
        assert got.figures["journal_sha256"] == want.figures["journal_sha256"]
        assert got.figures["queue_ahead_at_end"] == want.figures["queue_ahead_at_end"]
    deltas = events(book(0, [(100, 10)], [(102, 5)]) + level(10, B, 100, 16))
    (whole,) = deltas
    assert (
        run([], [1], batches=[whole]).figures["journal_sha256"]
        == run([], [1], batches=[whole[:3], whole[3:]]).figures["journal_sha256"]
    )


def test_an_instrument_not_in_the_run_is_named():
    (snap,) = events(START)
    snap["instrument_id"][-1] = 7
    with pytest.raises(ValueError, match=r"instrument 7 is not in \[1\]"):
        run([], [1], batches=[snap])


def test_full_order_rows_or_ack_ring_stop_the_l2_loop_which_grows_them_and_goes_on(
    monkeypatch,
):
    from redline.strategies import market_maker
    from redline.venue import backtest, l1

    rng = np.random.default_rng(4)
    rows, bid = book(0, [(100, 10)], [(102, 10)]), 100
    for t in range(10, 3000, 10):  # the touch wanders, a trade now and then
        new = bid + int(rng.integers(-1, 2))
        if new != bid:
            rows += level(t, B, bid, 0, 0) + level(t, A, bid + 2, 0, 0)
        bid = new
        rows += level(t, B, bid, int(rng.integers(1, 20)), 0) + level(t, A, bid + 2, 9)
        if t % 70 == 0:
            rows += trade(t + 1, A, bid, 3)

    def one():
        bt = L2Backtest("market_maker", market_maker.Params(), Latency(entry_us=5), [1])
        for b in events(rows):
            bt.feed(b)
        return bt.finish()

    roomy = one()
    stops = []
    monkeypatch.setattr(backtest, "_ROWS_AHEAD", 2)
    monkeypatch.setattr(l1, "ACK_RING", 2)
    grow = L2Backtest._make_room
    monkeypatch.setattr(L2Backtest, "_make_room", lambda self: stops.append(1) or grow(self))
    tight = one()
    assert len(stops) >= 10  # each buffer doubled several times mid-chunk
    assert len(roomy.executions) > 100 and roomy.figures["fills"] > 5
    np.testing.assert_array_equal(tight.executions, roomy.executions)
    # json: a NaN Sharpe (too few bars) equals itself there
    assert json.dumps(tight.figures, sort_keys=True) == json.dumps(roomy.figures, sort_keys=True)
