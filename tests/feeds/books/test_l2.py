import numpy as np
import pytest

from redline.feeds import events as ev
from redline.feeds.books import ladder as book_ladder
from redline.feeds.books.l2 import TOP_DTYPE, L2Book, imbalance, microprice, microprices
from redline.feeds.books.reference import DictL2Book
from redline.feeds.events import UNDEF_PX, BookAction, Flag, Side


def deltas(rows: list[tuple]) -> np.ndarray:
    """rows of (side, action, px, sz[, flags])"""
    d = ev.empty(ev.RecordType.BOOK_DELTA, len(rows))
    for i, r in enumerate(rows):
        d[i]["side"], d[i]["action"], d[i]["px"], d[i]["sz"] = r[:4]
        d[i]["flags"] = r[4] if len(r) > 4 else Flag.LAST
    return d


def random_deltas(n: int, seed: int) -> np.ndarray:
    """Bids below 1000, asks above, sizes 0..9 (0 deletes), a CLEAR now and
    then, and a few far-away prices that force the ladder to grow."""
    rng = np.random.default_rng(seed)
    d = ev.empty(ev.RecordType.BOOK_DELTA, n)
    d["side"] = rng.integers(1, 3, n)
    dist = rng.geometric(0.15, n)
    far = rng.random(n) < 0.01
    dist[far] = rng.integers(5_000, 50_000, far.sum())
    d["px"] = np.where(d["side"] == Side.BID, 1000 - dist, 1000 + dist)
    d["sz"] = rng.integers(0, 10, n)
    d["action"] = np.where(d["sz"] == 0, BookAction.DELETE, BookAction.UPDATE)
    d["action"][rng.random(n) < 0.002] = BookAction.CLEAR
    d["action"][rng.random(n) < 0.01] = BookAction.TRADE  # no effect on L2
    d["flags"] = Flag.LAST
    return d


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_top_after_every_delta_and_depth_match_a_dict_book(seed):
    d = random_deltas(4000, seed)
    book = L2Book()
    check_against_dict_book(book, d)
    assert book.stats["applied"] == len(d)


def test_batches_give_the_same_book_as_one_call():
    d = random_deltas(3000, 9)
    whole, parts = L2Book(), L2Book()
    top_whole = whole.apply(d)
    tops = [parts.apply(d[i : i + 257]) for i in range(0, len(d), 257)]
    np.testing.assert_array_equal(np.concatenate(tops), top_whole)
    assert whole.best() == parts.best()


def test_crossed_book_is_counted_and_left_as_is():
    d = deltas(
        [
            (Side.BID, BookAction.ADD, 100, 5),
            (Side.ASK, BookAction.ADD, 101, 5),
            (Side.BID, BookAction.ADD, 101, 2, 0),  # mid-batch cross: not counted
            (Side.ASK, BookAction.DELETE, 101, 0),  # batch ends uncrossed
            (Side.ASK, BookAction.ADD, 102, 1),
            (Side.BID, BookAction.ADD, 103, 7),  # crosses the 102 ask
            (Side.ASK, BookAction.ADD, 104, 7),
        ]
    )
    book = L2Book()
    top = book.apply(d)
    assert top["crossed"].tolist() == [0, 0, 1, 0, 0, 1, 1]
    assert book.stats["crossed"] == 2  # deltas 5 and 6 end batches while crossed
    assert book.stats["first_crossed"] == 5
    assert book.crossed()
    assert book.best() == (103, 7, 102, 1)  # both levels kept: not "fixed"


def test_gap_marks_the_book_invalid_until_the_next_clear():
    d = deltas(
        [
            (Side.BID, BookAction.ADD, 100, 5),
            (Side.ASK, BookAction.ADD, 101, 5, Flag.LAST | Flag.GAP_BEFORE),
            (Side.ASK, BookAction.UPDATE, 101, 6),
            (Side.NONE, BookAction.CLEAR, 0, 0, Flag.SNAPSHOT),
            (Side.BID, BookAction.ADD, 99, 1, Flag.SNAPSHOT | Flag.LAST),
        ]
    )
    book = L2Book()
    top = book.apply(d)
    assert top["valid"].tolist() == [1, 0, 0, 1, 1]
    assert book.stats["gaps"] == 1 and book.valid
    assert book.best() == (99, 1, UNDEF_PX, 0)


def test_a_gap_flagged_on_the_clear_itself_is_counted_and_healed_by_its_snapshot():
    # Recorders flag the re-snapshot that follows a gap on its CLEAR (the bundled recording's
    # 23 do): the book was left invalid until the next CLEAR, so features read zeros.
    d = deltas(
        [
            (Side.BID, BookAction.ADD, 100, 5),
            (Side.NONE, BookAction.CLEAR, 0, 0, Flag.SNAPSHOT | Flag.GAP_BEFORE),
            (Side.BID, BookAction.ADD, 99, 1, Flag.SNAPSHOT),
            (Side.ASK, BookAction.ADD, 101, 2, Flag.SNAPSHOT | Flag.LAST),
            (Side.ASK, BookAction.UPDATE, 101, 3, Flag.LAST),
        ]
    )
    book = L2Book()
    top = book.apply(d)
    assert top["valid"].tolist() == [1, 1, 1, 1, 1]
    assert book.stats["gaps"] == 1 and book.valid and book.best() == (99, 1, 101, 3)


def test_features_from_the_levels():
    d = deltas(
        [
            (Side.BID, BookAction.ADD, 100, 30),
            (Side.BID, BookAction.ADD, 99, 10),
            (Side.ASK, BookAction.ADD, 102, 10),
            (Side.ASK, BookAction.ADD, 103, 50),
        ]
    )
    book = L2Book()
    book.apply(d)
    assert book.imbalance(1) == pytest.approx((30 - 10) / 40)
    assert book.imbalance(2) == pytest.approx((40 - 60) / 100)
    # microprice leans toward the ask, where there is less size
    assert book.microprice() == pytest.approx((100 * 10 + 102 * 30) / 40)
    assert np.isnan(microprice(UNDEF_PX, 0, 102, 10))
    top = book.apply(
        deltas([(Side.ASK, BookAction.DELETE, 102, 0), (Side.ASK, BookAction.DELETE, 103, 0)])
    )
    # per-row microprice of the top array: 103 is now the ask, then the ask side is empty
    np.testing.assert_allclose(microprices(top), [(100 * 50 + 103 * 30) / 80, np.nan])
    assert imbalance(np.array([]), np.array([])) == 0.0


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(TypeError, match="BOOK_DELTA"):
        L2Book().apply(ev.empty(ev.RecordType.QUOTE, 3))
    with pytest.raises(ValueError, match="TOP_DTYPE"):
        L2Book().apply(deltas([(Side.BID, BookAction.ADD, 1, 1)]), top=np.empty(0, TOP_DTYPE))
    with pytest.raises(ValueError, match="window_ticks must be >= 4096"):
        L2Book(window_ticks=100)


def check_against_dict_book(book: L2Book, d: np.ndarray) -> np.ndarray:
    """Apply `d` in batches of 97; top after every delta and 30 levels a side at the end
    as the dict book has them."""
    ref = DictL2Book()
    top = np.concatenate([book.apply(d[i : i + 97]) for i in range(0, len(d), 97)])
    for i, r in enumerate(d):
        ref.apply(int(r["side"]), int(r["action"]), int(r["px"]), int(r["sz"]))
        got = tuple(int(top[i][k]) for k in ("bid_px", "bid_sz", "ask_px", "ask_sz"))
        assert got == ref.best(), f"delta {i}"
    for side in (Side.BID, Side.ASK):
        px, sz = book.levels(side, 30)
        assert list(zip(px.tolist(), sz.tolist(), strict=True)) == ref.levels(side, 30)
        assert book.depth(side) == len(ref.asks if side == Side.ASK else ref.bids)
    assert book.stats["missing_deletes"] == ref.missing_deletes
    return top


@pytest.mark.parametrize("seed", [4, 5])
def test_a_small_window_with_far_levels_still_matches_a_dict_book(seed):
    book = L2Book(window_ticks=book_ladder.MIN_SPAN)  # the 5k-50k prices all go far
    check_against_dict_book(book, random_deltas(4000, seed))
    assert book.stats["window_ticks"] <= book_ladder.MIN_SPAN


def test_levels_ten_thousand_times_apart_are_held_without_growing_the_window():
    # A real USD-M capture raised "price ... more than the 33554432-tick ladder": resting
    # bids at a hundredth of the mid and asks at a hundred times it, tick 0.1.
    mid = 600_000
    rows = [(Side.BID, BookAction.ADD, mid // 100, 7), (Side.ASK, BookAction.ADD, mid * 100, 3)]
    rows += [(Side.BID, BookAction.ADD, mid - k, k) for k in range(1, 40)]
    rows += [(Side.ASK, BookAction.ADD, mid + k, k) for k in range(1, 40)]
    rows += [(Side.BID, BookAction.DELETE, mid - k, 0) for k in range(1, 40)]  # only far left
    book = L2Book()
    check_against_dict_book(book, deltas(rows))
    assert book.best() == (mid // 100, 7, mid + 1, 1)
    assert book.stats["far_levels"] == 2 and book.stats["window_ticks"] <= L2Book().window_ticks


def test_a_touch_that_walks_far_moves_the_window_and_keeps_every_level():
    # The mid walks 2,000,000 ticks down and back up, 5 levels a side follow it, and one
    # resting order a side stays where it was placed (far behind, then far ahead).
    rng = np.random.default_rng(11)
    rows, mid = (
        [(Side.BID, BookAction.ADD, 10, 1), (Side.ASK, BookAction.ADD, 9_000_000, 1)],
        3_000_000,
    )
    quoted: dict[tuple, int] = {}
    for step in range(3000):
        mid += (-1 if step < 1500 else 1) * int(rng.integers(0, 2000))
        for side, sign in ((Side.BID, -1), (Side.ASK, 1)):
            for key in [k for k in quoted if k[0] == side]:  # the old quotes go
                rows.append((side, BookAction.DELETE, key[1], 0))
                del quoted[key]
            for k in range(1, 6):
                px = mid + sign * k
                quoted[(side, px)] = int(rng.integers(1, 9))
                rows.append((side, BookAction.ADD, px, quoted[(side, px)]))
    book = L2Book(window_ticks=1 << 14)
    top = check_against_dict_book(book, deltas(rows))
    assert top["bid_px"].min() < 2_000_000 < 3_000_000 < top["bid_px"][-1] + 1_000_000
    assert book.stats["window_moves"] > 10 and book.stats["window_ticks"] <= 1 << 14
    assert book.stats["far_levels"] == 2  # the two resting orders, wherever the window went


def test_a_level_deleted_far_from_the_window_goes_and_a_missing_one_is_counted():
    rows = [(Side.BID, BookAction.ADD, 1000, 5), (Side.ASK, BookAction.ADD, 1001, 5)]
    rows += [(Side.ASK, BookAction.ADD, 50_000_000, 2), (Side.ASK, BookAction.ADD, 60_000_000, 4)]
    rows += [(Side.ASK, BookAction.DELETE, 50_000_000, 0), (Side.ASK, BookAction.DELETE, 7e7, 0)]
    book = L2Book()
    check_against_dict_book(book, deltas(rows))
    assert book.levels(Side.ASK, 5)[0].tolist() == [1001, 60_000_000]
    assert book.stats["missing_deletes"] == 1 and book.stats["far_levels"] == 1
    book.apply(deltas([(Side.ASK, BookAction.CLEAR, 0, 0)]))  # a snapshot clears far levels too
    assert book.depth(Side.ASK) == 0 and book.stats["far_levels"] == 0
