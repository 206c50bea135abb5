import numpy as np
import pytest

from redline.feeds import events as ev
from redline.feeds.books.l3 import L3Book
from redline.feeds.books.reference import DictL3Book
from redline.feeds.events import UNDEF_PX, BookAction, Flag, Side


def deltas(rows: list[tuple]) -> np.ndarray:
    """rows of (side, action, px, sz, order_id[, flags])"""
    d = ev.empty(ev.RecordType.BOOK_DELTA, len(rows))
    for i, r in enumerate(rows):
        d[i]["side"], d[i]["action"], d[i]["px"], d[i]["sz"], d[i]["order_id"] = r[:5]
        d[i]["flags"] = r[5] if len(r) > 5 else Flag.LAST
    return d


def random_orders(n: int, seed: int, far: float = 0.0) -> np.ndarray:
    """Adds, modifies (price and size), partial and full cancels, fills and
    trades (no effect), unknown ids, and a rare CLEAR; a share `far` of the prices
    lies 5k-50k ticks from the touch."""
    rng = np.random.default_rng(seed)
    d = ev.empty(ev.RecordType.BOOK_DELTA, n)
    live: list[int] = []
    next_id = 1
    for i in range(n):
        r = rng.random()
        rec = d[i]
        rec["flags"] = Flag.LAST
        side = int(rng.integers(1, 3))
        dist = int(rng.integers(5_000, 50_000)) if rng.random() < far else int(rng.geometric(0.2))
        px = 1000 + (1 if side == Side.ASK else -1) * dist
        if r < 0.45 or not live:
            rec["action"], rec["order_id"] = BookAction.ADD, next_id
            live.append(next_id)
            next_id += 1
        elif r < 0.65:
            rec["action"], rec["order_id"] = BookAction.UPDATE, live[rng.integers(len(live))]
        elif r < 0.9:
            k = int(rng.integers(len(live)))
            rec["action"], rec["order_id"] = BookAction.DELETE, live[k]
            if rng.random() < 0.6:
                live.pop(k)
                side, px = 0, 0  # a full cancel carries no price: the book knows it
        elif r < 0.95:
            rec["action"] = BookAction.FILL if r < 0.93 else BookAction.TRADE
            rec["order_id"] = live[rng.integers(len(live))]
        elif r < 0.999:
            rec["action"], rec["order_id"] = BookAction.DELETE, 10**12 + i  # unknown id
        else:
            rec["action"] = BookAction.CLEAR
            live.clear()
        rec["side"], rec["px"] = side, px
        rec["sz"] = int(rng.integers(1, 20)) if rec["action"] != BookAction.DELETE else 0
        if rec["action"] == BookAction.DELETE and rng.random() < 0.3:
            rec["sz"] = int(rng.integers(1, 10))  # partial cancel
    return d


@pytest.mark.parametrize(("seed", "far", "window"), [(11, 0.0, None), (12, 0.0, None),
                                                   (13, 0.05, 4096), (14, 0.2, 4096)])  # fmt: skip
def test_top_after_every_delta_matches_a_dict_of_orders(seed, far, window):
    d = random_orders(5000, seed, far)
    # a small table forces tombstone clean-ups and growth on the way; a small window puts
    # the far prices among the far levels and moves the window when they become the touch
    book = L3Book(order_capacity=16, **({"window_ticks": window} if window else {}))
    ref = DictL3Book()
    top = np.concatenate([book.apply(d[i : i + 331]) for i in range(0, len(d), 331)])
    for i, r in enumerate(d):
        ref.apply(int(r["side"]), int(r["action"]), int(r["px"]), int(r["sz"]), int(r["order_id"]))
        got = tuple(int(top[i][k]) for k in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
        assert got == ref.best(), f"delta {i}: {r}"
    assert book.stats["orders"] == len(ref.orders)
    assert book.stats["missing_cancels"] == ref.missing_cancels
    for oid, (side, px, sz) in list(ref.orders.items())[:200]:
        assert book.order(oid) == (side, px, sz)
    for side in (Side.BID, Side.ASK):
        px, sz, ct = book.levels(side, 10)
        levels = ref.asks if side == Side.ASK else ref.bids
        want = sorted(levels.items(), reverse=side == Side.BID)[:10]
        assert list(zip(px.tolist(), sz.tolist(), ct.tolist(), strict=True)) == [
            (p, s, c) for p, (s, c) in want
        ]


def test_order_lifecycle_and_counters():
    d = deltas(
        [
            (Side.BID, BookAction.ADD, 100, 5, 1),
            (Side.BID, BookAction.ADD, 100, 3, 2),
            (Side.ASK, BookAction.ADD, 102, 4, 3),
            (Side.BID, BookAction.DELETE, 0, 2, 1),  # partial cancel: 5 -> 3
            (Side.BID, BookAction.FILL, 100, 3, 2),  # informational
            (Side.BID, BookAction.UPDATE, 101, 6, 2),  # modify: new price, new size
            (Side.ASK, BookAction.DELETE, 0, 0, 99),  # unknown id
            (Side.ASK, BookAction.UPDATE, 103, 1, 7),  # unknown id: added
        ]
    )
    book = L3Book()
    top = book.apply(d)
    assert top[3][["bid_px", "bid_sz"]].tolist() == (100, 6)
    assert top[4][["bid_px", "bid_sz"]].tolist() == (100, 6)
    assert top[5][["bid_px", "bid_sz"]].tolist() == (101, 6)
    assert book.order(1) == (Side.BID, 100, 3) and book.order(2) == (Side.BID, 101, 6)
    assert book.order(99) is None
    s = book.stats
    assert (s["orders"], s["missing_cancels"], s["unknown_modifies"]) == (4, 1, 1)
    px, sz, ct = book.levels(Side.ASK, 5)
    assert (px.tolist(), sz.tolist(), ct.tolist()) == ([102, 103], [4, 1], [1, 1])
    book.apply(deltas([(Side.NONE, BookAction.CLEAR, 0, 0, 0)]))
    assert book.best() == (UNDEF_PX, 0, UNDEF_PX, 0) and book.stats["orders"] == 0
    assert book.order(1) is None


def test_a_gap_flagged_on_the_clear_is_counted_and_healed_by_its_snapshot():
    d = deltas(
        [
            (Side.BID, BookAction.ADD, 100, 5, 1),
            (Side.NONE, BookAction.CLEAR, 0, 0, 0, Flag.SNAPSHOT | Flag.GAP_BEFORE),
            (Side.BID, BookAction.ADD, 99, 1, 2, Flag.SNAPSHOT | Flag.LAST),
            (Side.BID, BookAction.ADD, 98, 1, 3, Flag.GAP_BEFORE | Flag.LAST),
        ]
    )
    book = L3Book()
    top = book.apply(d)
    assert top["valid"].tolist() == [1, 1, 1, 0]  # a gap on any other delta still invalidates
    assert book.stats["gaps"] == 2


def test_crossing_order_is_reported_not_removed():
    d = deltas(
        [
            (Side.ASK, BookAction.ADD, 102, 4, 1),
            (Side.BID, BookAction.ADD, 103, 1, 2),
        ]
    )
    book = L3Book()
    top = book.apply(d)
    assert top["crossed"].tolist() == [0, 1]
    assert book.stats["crossed"] == 1 and book.stats["first_crossed"] == 1
    assert book.best() == (103, 1, 102, 4)


def test_clear_of_a_sparse_book_leaves_no_stale_levels():
    far = [(Side.BID, BookAction.ADD, 100 - k * 5000, 3, k + 1) for k in range(5)]
    far += [(Side.ASK, BookAction.ADD, 101 + k * 5000, 2, k + 10) for k in range(5)]
    book = L3Book()
    book.apply(deltas(far))
    assert book.levels(Side.BID, 10)[0].tolist() == [100, -4900, -9900, -14900, -19900]
    book.apply(deltas([(Side.NONE, BookAction.CLEAR, 0, 0, 0), far[0], far[5]]))
    assert book.best() == (100, 3, 101, 2)  # not 6 and 4: the old levels were zeroed
    px, sz, ct = book.levels(Side.BID, 10)
    assert (px.tolist(), sz.tolist(), ct.tolist()) == ([100], [3], [1])
    assert book.stats["orders"] == 2


def test_orders_ten_thousand_times_apart_and_a_touch_that_walks_far():
    # The ladder once refused a price more than 2^25 ticks from the other levels.
    mid = 600_000
    rows = [
        (Side.BID, BookAction.ADD, mid // 100, 7, 1),
        (Side.ASK, BookAction.ADD, mid * 100, 3, 2),
    ]
    rows += [(Side.BID, BookAction.ADD, mid - k, k, 10 + k) for k in range(1, 6)]
    rows += [(Side.ASK, BookAction.ADD, mid + k, k, 20 + k) for k in range(1, 6)]
    book = L3Book()
    book.apply(deltas(rows))
    assert book.best() == (mid - 1, 1, mid + 1, 1) and book.stats["far_levels"] == 2
    # the near orders go: the far ones are the touch
    book.apply(deltas([(Side.NONE, BookAction.DELETE, 0, 0, 10 + k) for k in range(1, 6)]))
    book.apply(deltas([(Side.NONE, BookAction.DELETE, 0, 0, 20 + k) for k in range(1, 6)]))
    assert book.best() == (mid // 100, 7, mid * 100, 3)
    # the touch walks 50M ticks up: the window follows, the old far order stays exact
    book.apply(deltas([(Side.BID, BookAction.ADD, 50_000_000, 4, 99)]))
    assert book.best() == (50_000_000, 4, mid * 100, 3)
    assert book.levels(Side.BID, 5)[0].tolist() == [50_000_000, mid // 100]
    book.apply(deltas([(Side.NONE, BookAction.DELETE, 0, 0, 1)]))  # a far order cancelled
    assert book.levels(Side.BID, 5)[0].tolist() == [50_000_000]
    assert book.stats["missing_cancels"] == 0 and book.stats["orders"] == 2
    book.apply(deltas([(Side.NONE, BookAction.CLEAR, 0, 0, 0)]))
    assert book.stats["far_levels"] == 0 and book.best()[0] == UNDEF_PX
