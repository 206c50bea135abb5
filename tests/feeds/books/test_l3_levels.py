"""L3 -> L2 deltas with queue priority: every case of the module docstring, hand-computed, and
the same output whether the stream comes in one batch or several."""

import numpy as np
import pytest

from redline.feeds.books.l3_levels import NO_PRIORITY, L3Levels
from redline.feeds.events import BOOK_DELTA_DTYPE, BookAction, Flag, Side
from redline.feeds.realdata import realdata_dir

A, U, D, F, T, C = (BookAction.ADD, BookAction.UPDATE, BookAction.DELETE, BookAction.FILL,
                    BookAction.TRADE, BookAction.CLEAR)  # fmt: skip
B, S = Side.BID, Side.ASK

# (action, order id, side, px, sz, flags)
STREAM = [
    (A, 1, B, 100, 5, 0),  # 0: level 100 = 5, id1 has place 0
    (A, 2, B, 100, 3, 0),  # 1: 8, id2 place 1
    (U, 1, B, 100, 2, 0),  # 2: a size cut keeps place 0: 5
    (U, 2, B, 100, 4, Flag.LAST),  # 3: more size loses place: out 3 (old place), in 4 behind
    (D, 1, B, 100, 0, 0),  # 4: id1 cancelled whole (place 0): 4
    (F, 2, B, 100, 1, 0),  # 5: fill: information only, dropped
    (T, 0, S, 100, 1, 0),  # 6: trade passes through
    (D, 9, B, 100, 1, 0),  # 7: never added: no change, counted
    (U, 3, B, 101, 2, 0),  # 8: modify of an unknown id: added at 101
    (U, 2, B, 99, 4, 0),  # 9: new price: out of 100 (place 4), in at 99
    (C, 0, B, 0, 0, 0),  # 10: clear
]
# (input index, action, side, px, level size, priority)
WANT = [
    (0, U, B, 100, 5, 0),
    (1, U, B, 100, 8, 1),
    (2, U, B, 100, 5, 0),
    (3, U, B, 100, 2, 1),
    (3, U, B, 100, 6, 4),
    (4, U, B, 100, 4, 0),
    (6, T, S, 100, 1, NO_PRIORITY),
    (8, U, B, 101, 2, 7),
    (9, D, B, 100, 0, 4),
    (9, U, B, 99, 4, 9),
    (10, C, B, 0, 0, NO_PRIORITY),
]


def deltas() -> np.ndarray:
    d = np.zeros(len(STREAM), BOOK_DELTA_DTYPE)
    for i, (a, oid, side, px, sz, flags) in enumerate(STREAM):
        d[i]["action"], d[i]["order_id"], d[i]["side"] = a, oid, side
        d[i]["px"], d[i]["sz"], d[i]["flags"], d[i]["seq"] = px, sz, flags, 1000 + i
    d["ts_recv"] = 10_000 + np.arange(len(d))
    return d


def test_each_change_keeps_the_place_its_order_had_and_the_level_size():
    conv = L3Levels()
    out, prio, src = conv.convert(deltas())
    got = [(int(r["seq"]) - 1000, r["action"], r["side"], r["px"], r["sz"], p)
           for r, p in zip(out, prio, strict=True)]  # fmt: skip
    assert got == WANT
    assert (out["order_id"] == 0).all()
    assert src.tolist() == [w[0] for w in WANT]  # the input record each came from
    assert out["ts_recv"].tolist() == [10_000 + w[0] for w in WANT]  # headers kept
    # LAST only on the last delta record 3 gave
    assert [int(f) & Flag.LAST for f in out["flags"][3:5]] == [0, Flag.LAST]
    assert conv.stats() == {"fills_dropped": 1, "unknown_orders": 1, "modified_unknown": 1,
                            "resting_orders": 0}  # fmt: skip


def test_batches_give_the_same_deltas_and_places_as_one_stream():
    d = deltas()
    whole, p_whole, _ = L3Levels().convert(d)
    conv = L3Levels()
    parts = [conv.convert(d[s:e]) for s, e in ((0, 3), (3, 4), (4, 9), (9, len(d)))]
    np.testing.assert_array_equal(np.concatenate([o for o, _, _ in parts]), whole)
    np.testing.assert_array_equal(np.concatenate([p for _, p, _ in parts]), p_whole)


def test_an_l2_book_fed_the_levels_shows_the_l3_books_top_after_every_order_change():
    from redline.feeds.books.l2 import L2Book
    from redline.feeds.books.l3 import L3Book

    from .test_l3 import random_orders

    d = random_orders(4000, seed=21)
    d["seq"] = np.arange(len(d))
    want = L3Book().apply(d)
    conv, l2 = L3Levels(), L2Book()
    for s in range(0, len(d), 500):
        out, _, _ = conv.convert(d[s : s + 500])
        top = l2.apply(out)
        # the top after the last level delta each order change gave
        ends = np.flatnonzero(np.r_[out["seq"][1:] != out["seq"][:-1], True])
        seqs = out["seq"][ends]
        cols = ("bid_px", "bid_sz", "ask_px", "ask_sz")
        for c in cols:
            np.testing.assert_array_equal(top[c][ends], want[c][seqs], err_msg=c)


@pytest.mark.realdata
@pytest.mark.skipif(realdata_dir() is None, reason="no ../shared/realdata")
def test_real_cme_mbo_levels_show_the_l3_books_top_at_every_batch_end():
    from redline.feeds.books.l2 import L2Book
    from redline.feeds.books.l3 import L3Book
    from redline.feeds.importers import dbn as di

    cme = realdata_dir() / "cme"
    imp = di.import_dbn([cme / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst",
                         cme / "orderbooks_definition.dbn.zst"])  # fmt: skip
    b = imp.book.copy()
    b["seq"] = np.arange(len(b))  # where each level delta came from
    want = L3Book().apply(b)
    conv = L3Levels()
    out, prio, _ = conv.convert(b)
    top = L2Book(window_ticks=1 << 16).apply(out)
    ends = (out["flags"] & Flag.LAST) != 0
    cols = ["bid_px", "bid_sz", "ask_px", "ask_sz"]
    assert ends.sum() == ((b["flags"] & Flag.LAST) != 0).sum()
    for c in cols:
        np.testing.assert_array_equal(top[c][ends], want[c][out["seq"][ends]], err_msg=c)
    assert conv.stats()["unknown_orders"] == 0 and conv.stats()["resting_orders"] == 13_598
    changes = ~np.isin(out["action"], [BookAction.TRADE, BookAction.CLEAR])
    assert (prio[changes] >= 0).all() and (prio[changes] < len(out)).all()
