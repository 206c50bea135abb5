import json

import numpy as np

from redline.feeds.books.l2 import L2Book
from redline.feeds.events import BookAction, Flag
from redline.feeds.importers import binance as bi


def line(ts, obj):
    return f"{ts} {json.dumps(obj, separators=(',', ':'))}"


def depth(U, u, pu, bids, asks=()):
    data = {"e": "depthUpdate", "E": 5, "T": 4, "s": "X", "U": U, "u": u, "pu": pu}
    return {"stream": "x@depth", "data": data | {"b": bids, "a": list(asks)}}


def snapshot(last, bids, asks):
    return {"lastUpdateId": last, "E": 5, "T": 4, "bids": bids, "asks": asks}


def test_after_a_gap_events_flow_invalid_then_resync_on_the_next_snapshot():
    lines = [
        line(10, snapshot(100, [["1.00", "1"]], [["2.00", "1"]])),
        line(20, depth(99, 101, 98, [["1.00", "2"]])),  # first: U <= 100 <= u
        line(30, depth(105, 110, 104, [["1.10", "3"]])),  # gap: pu 104 != 101
        line(40, depth(111, 115, 110, [["1.20", "4"]])),  # flows, still invalid
        line(50, snapshot(112, [["1.00", "9"]], [["2.00", "9"]])),  # resync
        line(60, depth(116, 118, 115, [["1.30", "5"]], [["2.00", "0"]])),
    ]
    imp = bi.import_bytes("\n".join(lines).encode())
    s = imp.stats["binance"]
    assert (s["snapshots"], s["gaps"], s["dropped_stale"], s["unsynced"]) == (2, 1, 1, 0)
    assert s["replayed"] == 1  # of the two held since the gap, the one not older than 112
    b = imp.book
    seqs = [(int(r["ts_recv"]), int(r["seq"]), int(r["action"])) for r in b]
    assert seqs == [
        (10, 100, BookAction.CLEAR), (10, 100, BookAction.ADD), (10, 100, BookAction.ADD),
        (20, 101, BookAction.UPDATE),
        (30, 110, BookAction.UPDATE),
        (40, 115, BookAction.UPDATE),
        (50, 112, BookAction.CLEAR), (50, 112, BookAction.ADD), (50, 112, BookAction.ADD),
        # held: u=110 < 112 dropped; u=115 re-applied (U 111 <= 112 <= 115), at the snapshot's time
        (50, 115, BookAction.UPDATE),
        (60, 118, BookAction.UPDATE), (60, 118, BookAction.DELETE),
    ]  # fmt: skip
    assert b["flags"][4] & Flag.GAP_BEFORE
    assert b["flags"][9] & Flag.BAD_TS_RECV and not b["flags"][9] & Flag.GAP_BEFORE
    top = L2Book().apply(b)
    assert top["valid"].tolist() == [1] * 4 + [0, 0] + [1] * 6
    assert top[-1][["bid_px", "bid_sz", "ask_px", "ask_sz"]].tolist() == (
        13,  # 1.30 on the 0.10 grid every price of the capture sits on
        5,
        np.iinfo(np.int64).max,
        0,
    )


def test_a_capture_without_a_snapshot_emits_no_book():
    lines = [
        line(20, depth(99, 101, 98, [["1.00", "2"]])),
        line(30, depth(102, 103, 101, [["1.00", "3"]])),
    ]
    imp = bi.import_bytes("\n".join(lines).encode())
    assert len(imp.book) == 0
    assert imp.stats["binance"]["unsynced"] == 2 and imp.stats["binance"]["applied"] == 0


def spot_depth(U, u, bids, asks=(), sym="X"):
    data = {"e": "depthUpdate", "E": 7, "s": sym, "U": U, "u": u, "b": bids, "a": list(asks)}
    return {"stream": "x@depth@100ms", "data": data}


def spot_snapshot(last, bids, asks):
    return {"lastUpdateId": last, "bids": bids, "asks": asks}


def test_spot_syncs_on_last_update_id_plus_one_then_contiguous_update_ids():
    lines = [
        line(5, spot_depth(90, 100, [["1.00", "7"]])),  # u <= 100: stale for spot
        line(10, spot_snapshot(100, [["1.00", "1"]], [["2.00", "1"]])),
        line(20, spot_depth(101, 104, [["1.00", "2"]])),  # first: U <= 101 <= u
        line(30, spot_depth(105, 107, [["1.10", "3"]])),  # U == 104 + 1: in sequence
        line(40, spot_depth(109, 110, [["1.20", "4"]])),  # U 109 != 108: a gap
    ]
    imp = bi.import_bytes("\n".join(lines).encode())
    s = imp.stats["binance"]
    assert (s["snapshots"], s["dropped_stale"], s["applied"], s["gaps"]) == (1, 1, 3, 1)
    assert s["market X"] == "spot"
    b = imp.book
    assert b["seq"].tolist() == [100, 100, 100, 104, 107, 110]
    gap = (b["flags"] & Flag.GAP_BEFORE) != 0
    assert gap.tolist() == [False] * 5 + [True]
    # spot diff-depth has no `T`: ts_event is its event time E (7 ms); the REST snapshot
    # has no time at all: 0, not invented
    assert b["ts_event"].tolist() == [0, 0, 0, 7_000_000, 7_000_000, 7_000_000]
    (inst,) = imp.instruments
    assert inst.instrument_id == bi.instrument_id("X", "spot") != bi.instrument_id("X")


def test_spot_first_event_must_cover_last_update_id_plus_one():
    lines = [
        line(10, spot_snapshot(100, [["1.00", "1"]], [])),
        line(20, spot_depth(102, 104, [["1.00", "2"]])),  # U 102 > 101: 101 was missed
    ]
    b = bi.import_bytes("\n".join(lines).encode()).book
    assert b["flags"][-1] & Flag.GAP_BEFORE


def test_coin_m_depth_syncs_by_the_futures_rule_and_carries_face_value():
    def coin_m(U, u, pu, bids):
        data = {"e": "depthUpdate", "E": 5, "T": 4, "s": "ETHUSD_PERP", "ps": "ETHUSD",
                "U": U, "u": u, "pu": pu, "b": bids, "a": []}  # fmt: skip
        return {"stream": "ethusd_perp@depth", "data": data}

    lines = [
        line(10, snapshot(100, [["2500.10", "3"]], [["2500.20", "1"]])),
        line(20, coin_m(99, 101, 98, [["2500.10", "4"]])),  # U <= 100 <= u
        line(30, coin_m(102, 103, 101, [["2500.00", "2"]])),  # pu == previous u
        line(40, coin_m(105, 106, 104, [["2500.00", "0"]])),  # pu 104 != 103: a gap
    ]
    imp = bi.import_bytes("\n".join(lines).encode())
    s = imp.stats["binance"]
    assert (s["market ETHUSD_PERP"], s["applied"], s["gaps"]) == ("coin-m", 3, 1)
    (inst,) = imp.instruments
    assert (str(inst.tick_size), inst.multiplier) == ("0.1", 10)  # ETHUSD: USD 10 a contract
    assert imp.book["px"].tolist() == [0, 25001, 25002, 25001, 25000, 25000]
