import numpy as np
import pytest

from redline.feeds.clock import ReplayClock
from redline.feeds.events import Flag, Origin, Side
from redline.strategies.signal_trader import ANSWER_DTYPE, Reason, SignalTrader, SignalTraderConfig

T0 = 1_700_000_000_000_000_000


def answers(scores, inst=1, ts_recv=T0, origin=Origin.WORKER_A, flags=0, bid=1000, ask=1002):
    a = np.zeros(len(scores), ANSWER_DTYPE)
    a["score"] = scores
    a["instrument_id"] = inst
    a["ts_recv"] = ts_recv
    a["input_seq"] = np.arange(len(scores)) + 100
    a["origin"] = origin
    a["flags"] = flags
    a["bid_px"], a["ask_px"] = bid, ask
    a["model_version"] = 7
    return a


def trader(**kw):
    clock = ReplayClock(T0)
    return SignalTrader(SignalTraderConfig(**kw), clock), clock


def sides(d):
    return [Side(s).name for s in d["side"]]


def test_scores_become_orders_at_the_touch_with_inputs_carried():
    t, _ = trader(threshold=0.5, qty=2)
    d = t.decide(answers([0.9, -0.7, 0.1]))
    assert sides(d) == ["BID", "ASK", "NONE"]
    assert list(d["px"]) == [1002, 1000, 0]  # buy at the ask, sell at the bid
    assert list(d["qty"]) == [2, 2, 0]
    assert list(d["input_seq"]) == [100, 101, 102]
    assert list(d["seq"]) == [1, 2, 3] and set(d["model_version"]) == {7}
    assert t.position[1] == 0
    assert t.counts[Reason.ORDER] == 2 and t.counts[Reason.NO_SIGNAL] == 1


def test_position_limit_cuts_then_refuses():
    t, _ = trader(threshold=0.1, qty=3, max_position=5, max_orders_per_s=100)
    d = t.decide(answers([1.0, 1.0, 1.0, -1.0]))
    assert list(d["qty"]) == [3, 2, 0, 3]
    assert sides(d) == ["BID", "BID", "NONE", "ASK"]
    assert t.position[1] == 2
    assert t.counts[Reason.POSITION_LIMIT] == 1


def test_order_rate_limit_per_instrument_and_window_slides():
    t, clock = trader(threshold=0.1, max_position=100, max_orders_per_s=2)
    d = t.decide(answers([1.0] * 4, ts_recv=T0))
    assert sides(d) == ["BID", "BID", "NONE", "NONE"]
    other = t.decide(answers([1.0], inst=2))
    assert sides(other) == ["BID"]  # limit is per instrument
    clock.advance(1_000_000_000)
    d = t.decide(answers([1.0], ts_recv=clock.now_ns()))
    assert sides(d) == ["BID"]
    assert t.counts[Reason.RATE_LIMIT] == 2


def test_stale_quote_and_missing_quote_take_no_risk():
    t, clock = trader(threshold=0.1, stale_after_us=1000)
    clock.advance(1_000_001)
    assert sides(t.decide(answers([1.0], ts_recv=T0))) == ["NONE"]
    assert sides(t.decide(answers([1.0], ts_recv=clock.now_ns(), bid=0))) == ["NONE"]
    assert sides(t.decide(answers([1.0], ts_recv=clock.now_ns()))) == ["BID"]
    assert t.counts[Reason.STALE] == 2


def test_sequence_gap_halts_instrument_until_snapshot():
    t, _ = trader(threshold=0.1, max_position=100, max_orders_per_s=100)
    assert sides(t.decide(answers([1.0], flags=Flag.GAP_BEFORE))) == ["NONE"]
    assert sides(t.decide(answers([1.0]))) == ["NONE"]  # still halted
    assert sides(t.decide(answers([1.0], inst=2))) == ["BID"]  # others trade
    assert sides(t.decide(answers([1.0], flags=Flag.SNAPSHOT))) == ["BID"]
    assert t.counts[Reason.HALTED] == 2


def test_safe_default_never_adds_risk_and_can_flatten():
    t, _ = trader(threshold=0.1, qty=2, max_orders_per_s=100)
    t.decide(answers([1.0, 1.0]))  # long 4
    d = t.decide(answers([1.0], origin=Origin.DEFAULT))
    assert sides(d) == ["NONE"] and t.position[1] == 4
    assert d["origin"][0] == Origin.DEFAULT
    f, _ = trader(threshold=0.1, qty=3, max_orders_per_s=100, flatten_on_default=True)
    f.decide(answers([1.0, 1.0]))  # long 6
    d = f.decide(answers([1.0, -1.0, 1.0], origin=Origin.DEFAULT))
    assert sides(d) == ["ASK", "ASK", "NONE"]  # sells down to flat, whatever the score
    assert list(d["px"][:2]) == [1000, 1000] and f.position[1] == 0
    assert f.counts[Reason.FLATTEN] == 2 and f.counts[Reason.DEFAULT] == 1


@pytest.mark.parametrize("score", [0.2, -0.2])
def test_threshold_is_inclusive(score):
    t, _ = trader(threshold=0.2)
    assert sides(t.decide(answers([score]))) == ["BID" if score > 0 else "ASK"]


def test_a_decision_past_its_deadline_adds_no_risk_but_still_sees_the_gap():
    t, _ = trader(threshold=0.5)
    a = answers([0.9, 0.9, 0.9], flags=0)
    a["deadline"] = [T0 + 10, T0 - 1, T0 - 1]  # the last two are late when decided at T0
    a["flags"][2] = Flag.GAP_BEFORE
    d = t.decide(a)
    assert sides(d) == ["BID", "NONE", "NONE"]
    assert t.counts[Reason.LATE] == 2 and t.counts[Reason.ORDER] == 1
    assert 1 in t.halted  # a late record's gap still halts the instrument
    assert dict(t.position) == {1: 1}
