"""The `exact` queue model (venue/l2_queue.py) on L3 (order by order) data, case by case:
L2Backtest turns each L3 instrument's deltas into level deltas with priorities
(feeds/books/l3_levels.py), and a cancel moves the queue ahead of our order only when its order
had its place before ours. Every queue is computed by hand (the other models' cases are in
test_l2.py); the scripted strategy (tests/venue/test_l2.py) buys 1 at the bid at the end of the
snapshot, and the order rests from the first event after it."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from redline.feeds.events import BOOK_DELTA_DTYPE, TRADE_DTYPE, BookAction, Flag, Side
from redline.feeds.importers import dbn as di
from redline.feeds.realdata import realdata_dir
from redline.pipeline.cli import backtest as backtest_cli
from redline.pipeline.cli.main import main
from redline.replay_data import DIR
from redline.venue import l2_backtest
from redline.venue.l2_backtest import L2Backtest
from redline.venue.latency import Latency
from redline.venue.orders import Orders, Status

from .test_l2 import START, level, run, scripted
from .test_l2 import events as l2_events

US = 1_000
B, A = Side.BID, Side.ASK
ADD, UPD, DEL, FILL = BookAction.ADD, BookAction.UPDATE, BookAction.DELETE, BookAction.FILL
TRADE, CLEAR = BookAction.TRADE, BookAction.CLEAR
SNAP, LAST = Flag.SNAPSHOT, Flag.LAST
MBO = "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
CME = realdata_dir() / "cme" if realdata_dir() else None


def snapshot(t, bids, asks):
    """CLEAR, then the orders (order id, px, sz) of each side, the last one flagged LAST."""
    rows = [(t, CLEAR, B, 0, 0, 0, SNAP)]
    rows += [(t, ADD, B, px, sz, oid, SNAP) for oid, px, sz in bids]
    rows += [(t, ADD, A, px, sz, oid, SNAP) for oid, px, sz in asks]
    rows[-1] = (*rows[-1][:6], SNAP | LAST)
    return rows


def order(t, action, px, sz, oid, side=B, flags=LAST):
    return [(t, action, side, px, sz, oid, flags)]


def deltas(rows, instrument=1):
    """One batch of BOOK_DELTA records (t µs, action, side, px, sz, order id, flags)."""
    d = np.zeros(len(rows), BOOK_DELTA_DTYPE)
    for i, (t, action, side, px, sz, oid, flags) in enumerate(rows):
        d[i]["ts_recv"] = d[i]["ts_event"] = t * US
        d[i]["action"], d[i]["side"], d[i]["px"], d[i]["sz"] = action, side, px, sz
        d[i]["order_id"], d[i]["flags"], d[i]["seq"] = oid, flags, i
    d["instrument_id"] = instrument
    return d


def l3run(rows, queue="exact", targets=(1,), **kw):
    return run([], list(targets), queue=queue, batches=[deltas(rows)], **kw)


# Our buy joins behind A (id 1, 3 lots) and B (id 2, 2 lots) at 100: 5 ahead. C (id 3, 4 lots)
# joins behind us and cancels (ahead still 5), A cancels (2), then a sell of 3 at 100 takes
# B's 2 and fills 1 of ours (the data show B's order go; FILL records are dropped).
BOOK = snapshot(0, [(1, 100, 3), (2, 100, 2)], [(9, 102, 5)])
C_JOINS = order(10, ADD, 100, 4, 3)
C_CANCELS = order(20, DEL, 100, 0, 3)
A_CANCELS = order(30, DEL, 100, 0, 1)
SELL_3 = [(40, TRADE, A, 100, 3, 0, 0), (40, FILL, B, 100, 2, 2, 0), *order(40, DEL, 100, 0, 2)]


@pytest.mark.parametrize(
    ("queue", "after_c_cancels", "after_a_cancels"),
    [
        ("exact", 5.0, 2.0),  # C was behind us, A ahead
        ("risk_averse", 5.0, 2.0),  # cancels never move us; the level (2) caps the queue
        ("power", 5 - 4 * 25 / 41, None),  # a share of C's 4: 5^2 / (5^2 + 4^2)
    ],
)
def test_a_cancel_moves_us_only_when_its_order_was_ahead(queue, after_c_cancels, after_a_cancels):
    joined = l3run(BOOK + C_JOINS, queue)
    assert joined.figures["queue_ahead_at_end"] == [5.0]
    c = l3run(BOOK + C_JOINS + C_CANCELS, queue)
    assert c.figures["queue_ahead_at_end"] == [pytest.approx(after_c_cancels)]
    assert c.figures["queue_model"] == queue
    if after_a_cancels is not None:
        a = l3run(BOOK + C_JOINS + C_CANCELS + A_CANCELS, queue)
        assert a.figures["queue_ahead_at_end"] == [after_a_cancels]


def test_a_trade_takes_the_queue_ahead_then_fills_us():
    r = l3run(BOOK + C_JOINS + C_CANCELS + A_CANCELS + SELL_3)
    (o,) = r.executions
    assert (o["status"], o["qty"], o["px"], o["ts_ack"]) == (Status.FILLED, 1, 100.0, 40 * US)
    assert r.figures["position"] == {1: 1}
    assert r.figures["l3"] == {"instruments": [1], "fills_dropped": 1, "unknown_orders": 0,
                               "modified_unknown": 0, "resting_orders": 1}  # fmt: skip


# A (id 1, 3), B (id 2, 2) and D (id 4, 4) ahead of us at 100: 9. A cuts to 1: a cut keeps its
# place, 7 ahead. E (id 5, 3) joins behind us. B raises to 6: it loses its place, so its 2 go
# from ahead (5) and its 6 rest behind us; B's cancel then leaves us at 5 (the level shows 8).
MODIFY = snapshot(0, [(1, 100, 3), (2, 100, 2), (4, 100, 4)], [(9, 102, 5)])
A_CUTS = order(10, UPD, 100, 1, 1)
E_JOINS = order(15, ADD, 100, 3, 5)
B_RAISES = order(20, UPD, 100, 6, 2)
B_CANCELS = order(30, DEL, 100, 0, 2)


def test_a_size_cut_keeps_its_place_and_a_raise_goes_behind_us():
    assert l3run(MODIFY + A_CUTS).figures["queue_ahead_at_end"] == [7.0]
    assert l3run(MODIFY + A_CUTS + E_JOINS).figures["queue_ahead_at_end"] == [7.0]
    raised = l3run(MODIFY + A_CUTS + E_JOINS + B_RAISES)
    assert raised.figures["queue_ahead_at_end"] == [5.0]
    cancelled = l3run(MODIFY + A_CUTS + E_JOINS + B_RAISES + B_CANCELS)
    assert cancelled.figures["queue_ahead_at_end"] == [5.0]
    # the power model, on the same levels, takes a share of B's 6 from ahead of us
    power = l3run(MODIFY + A_CUTS + E_JOINS + B_RAISES + B_CANCELS, "power")
    assert power.figures["queue_ahead_at_end"][0] < 5.0


# CME style: a trade, the FILL of each resting order it hit (dropped), then each one's cancel
# or size cut. 5 ahead (A 3, B 2), C (id 3, 4) behind. A sell of 2 takes 2 of A: ahead 3, and
# A's cut by 2 is that trade, not a cancel. A sell of 2 takes A's last lot and 1 of B: ahead 1,
# again once. B's last lot is then cancelled (ahead 0), and a sell of 1 fills us.
CME_STYLE = (
    BOOK + C_JOINS
    + [(20, TRADE, A, 100, 2, 0, 0), (20, FILL, B, 100, 2, 1, 0), *order(20, UPD, 100, 1, 1)]
    + [(30, TRADE, A, 100, 2, 0, 0), (30, FILL, B, 100, 1, 1, 0), (30, FILL, B, 100, 1, 2, 0),
       (30, DEL, B, 100, 0, 1, 0), *order(30, UPD, 100, 1, 2)]
)  # fmt: skip
B_GOES = order(40, DEL, 100, 0, 2)
SELL_1 = [(50, TRADE, A, 100, 1, 0, LAST)]


@pytest.mark.parametrize(("upto", "ahead"), [(20, 3.0), (30, 1.0), (40, 0.0)])
def test_a_trade_then_the_orders_it_filled_move_the_queue_once(upto, ahead):
    rows = [r for r in CME_STYLE + B_GOES if r[0] <= upto]
    r = l3run(rows)
    assert r.figures["queue_ahead_at_end"] == [ahead]
    assert r.executions["qty"].tolist() == [0]


def test_after_the_queue_ahead_is_gone_the_next_sell_fills_us():
    r = l3run(CME_STYLE + B_GOES + SELL_1)
    assert r.executions["qty"].tolist() == [1]
    assert r.figures["l3"]["fills_dropped"] == 3


# After a snapshot nobody's place is known: every order in it counts as ahead of ours. We rest
# behind 5 (C behind us); the snapshot shows 7 (ids 11 and 12) and caps nothing; 12 goes: 2
# ahead; 13 joins behind us and goes: still 2.
RESNAP = snapshot(20, [(11, 100, 4), (12, 100, 3)], [(19, 102, 5)])
AFTER_RESNAP = (order(30, DEL, 100, 0, 12) + order(40, ADD, 100, 2, 13)
                + order(50, DEL, 100, 0, 13))  # fmt: skip


@pytest.mark.parametrize(("upto", "ahead"), [(20, 5.0), (30, 2.0), (50, 2.0)])
def test_after_a_snapshot_everyone_in_it_counts_as_ahead(upto, ahead):
    rows = [r for r in BOOK + C_JOINS + RESNAP + AFTER_RESNAP if r[0] <= upto]
    assert l3run(rows).figures["queue_ahead_at_end"] == [ahead]


def test_l2_data_with_the_exact_model_or_an_instrument_that_mixes_both_are_refused():
    with pytest.raises(ValueError, match=r"--queue exact: instrument 1 has L2 \(price level\) "
                       r"deltas.*use --queue risk_averse\|power\|log on L2 data"):  # fmt: skip
        run(START + level(10, B, 100, 6), [1], queue="exact")
    # one instrument L3, the other L2: the L2 one is named
    both = [deltas(BOOK), *l2_events(START)]
    both[1]["instrument_id"] = 2
    with pytest.raises(ValueError, match="--queue exact: instrument 2 has L2"):
        run_two(both, "exact")
    # L2 level deltas, then orders with ids, in two batches or one
    (l2_snap,) = l2_events(START)
    later = deltas(C_JOINS)
    for batches in ([l2_snap, later], [np.concatenate([l2_snap, later])]):
        with pytest.raises(ValueError, match="backtest: instrument 1 mixes L2 and L3 deltas"):
            run([], [1], batches=batches)
    assert run(START + level(10, B, 100, 6), [1]).figures["l3"] is None  # L2: no conversion


def run_two(batches, queue):
    """The scripted buy on instruments 1 and 2, over `batches` as given."""
    params = SimpleNamespace(vector=lambda: np.zeros(0))
    bt = L2Backtest(scripted([1]), params, Latency(), [1, 2], queue=queue, window_ticks=1024,
                    orders=Orders(kind="limit"))  # fmt: skip
    for b in batches:
        bt.feed(b)
    return bt.finish()


def ones(records):
    return [records[i : i + 1] for i in range(len(records))]


def test_batches_in_any_cut_give_the_same_run(monkeypatch):
    # each batch run as it comes (not merged into one run at the end): the loop stops at the
    # first L3 delta wherever it falls, and the rest goes through the converter
    whole = deltas(CME_STYLE + B_GOES + SELL_1)
    want = l3run(CME_STYLE + B_GOES + SELL_1)
    monkeypatch.setattr(l2_backtest, "PENDING_ROWS", 1)
    for batches in ([whole[:cut], whole[cut:]] for cut in range(1, len(whole))):
        got = run([], [1], queue="exact", batches=batches)
        assert got.figures["journal_sha256"] == want.figures["journal_sha256"]
        assert got.figures["queue_ahead_at_end"] == want.figures["queue_ahead_at_end"]
        assert got.figures["l3"] == want.figures["l3"]
    # two instruments, L3 and L2, interleaved at the same times, with a TRADE record: split
    # by instrument and merged back in the order they came, in one batch or one by one
    l2 = deltas([(t, UPD, B, 50, 5 + t, 0, LAST) for t in (0, 10, 20, 30, 40, 50)]
                + [(0, UPD, A, 52, 5, 0, LAST)], instrument=2)  # fmt: skip
    mixed = np.concatenate([whole, l2])
    mixed = mixed[np.argsort(mixed["ts_recv"], kind="stable")]
    tr = np.zeros(1, TRADE_DTYPE)
    tr["ts_recv"], tr["instrument_id"], tr["aggressor"], tr["px"], tr["sz"] = 45 * US, 2, A, 50, 1
    early, late = mixed[mixed["ts_recv"] < 45 * US], mixed[mixed["ts_recv"] >= 45 * US]
    batched = run_two([early, tr, late], "power")
    one_by_one = run_two([*ones(early), tr, *ones(late)], "power")
    monkeypatch.undo()
    merged = run_two([early, tr, late], "power")
    for r in (one_by_one, merged):
        assert r.figures["journal_sha256"] == batched.figures["journal_sha256"]
        assert r.figures["queue_ahead_at_end"] == batched.figures["queue_ahead_at_end"]
    assert batched.figures["l3"]["instruments"] == [1]
    assert batched.figures["orders"] == 2  # a buy on each instrument


def test_the_cli_picks_exact_on_l3_data_and_refuses_it_on_l2_data(capsys):
    assert backtest_cli._queue("exact") == ("exact", 2.0)
    assert not backtest_cli._holds_l3([str(DIR)])  # the bundled book deltas are L2
    argv = ["backtest", str(DIR), "--strategy", "market_maker", "--queue", "exact"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--queue exact: instrument" in err[0], err


@pytest.mark.realdata
@pytest.mark.skipif(CME is None or not (CME / MBO).is_file(), reason="no ../shared/realdata")
def test_the_market_maker_on_a_real_mbo_capture_uses_the_exact_queue(tmp_path, capsys):
    out, report = tmp_path / "mbo", tmp_path / "bt.json"
    assert main(["import", str(CME / MBO), str(CME / "orderbooks_definition.dbn.zst"),
                 str(out)]) == 0  # fmt: skip
    argv = ["backtest", str(out), "--strategy", "market_maker", "--no-progress",
            "--json", str(report)]  # fmt: skip
    assert main(argv) == 0
    f = json.loads(report.read_text())
    fills = di.import_dbn([CME / MBO]).stats["dbn"][MBO]["actions"]["mbo"]["F"]
    assert f["queue_model"] == "exact" and f["l3"]["fills_dropped"] == fills > 0
    assert "(l2, queue exact)" in capsys.readouterr().out
    assert backtest_cli._holds_l3([str(out)])
