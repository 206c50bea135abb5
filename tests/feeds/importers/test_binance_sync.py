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
        130,
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
