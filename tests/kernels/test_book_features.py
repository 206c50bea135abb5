"""Book features: the numba reader of a resident L2 book against its reference and definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from redline.feeds.books.l2 import L2Book
from redline.feeds.events import BOOK_DELTA_DTYPE, BookAction, Flag, Side
from redline.kernels.book_features import book_features, book_features_ref
from redline.kernels.feature_names import (
    BOOK_FEATURE_NAMES,
    BOOK_INPUT_NAMES,
    FEATURE_NAMES,
    N_BOOK_FEATURES,
)


def deltas(rows) -> np.ndarray:
    """(side, action, px, sz[, flags]) tuples as BOOK_DELTA records."""
    d = np.zeros(len(rows), BOOK_DELTA_DTYPE)
    for i, (side, action, px, sz, *flags) in enumerate(rows):
        d[i]["side"], d[i]["action"], d[i]["px"], d[i]["sz"] = side, action, px, sz
        d[i]["flags"] = flags[0] if flags else 0
    return d


def features_of(book: L2Book, levels: int = 5) -> np.ndarray:
    out = np.full(N_BOOK_FEATURES, np.nan, np.float32)
    book_features(book, out, levels)
    return out


def test_the_book_inputs_follow_the_kernel_inputs():
    assert BOOK_INPUT_NAMES == FEATURE_NAMES + BOOK_FEATURE_NAMES
    assert len(BOOK_INPUT_NAMES) == 18 == len(set(BOOK_INPUT_NAMES))


def test_features_of_a_small_book_by_hand():
    book = L2Book()
    book.apply(
        deltas(
            [
                (Side.BID, BookAction.ADD, 100, 6),
                (Side.BID, BookAction.ADD, 98, 2),
                (Side.ASK, BookAction.ADD, 102, 1),
                (Side.ASK, BookAction.ADD, 103, 3),
            ]
        )
    )
    b, a = 8.0, 4.0
    vwap_bid, vwap_ask = (100 * 6 + 98 * 2) / b, (102 * 1 + 103 * 3) / a  # 99.5, 102.75
    micro = (vwap_bid * a + vwap_ask * b) / (a + b)
    want = [(b - a) / (b + a), (micro - 101.0) / 2.0, math.log1p(12.0), 2.0]
    np.testing.assert_allclose(features_of(book), want, rtol=1e-6)
    np.testing.assert_allclose(book_features_ref(book), want, rtol=1e-12)
    # one level each side: the usual microprice, leaning toward the thinner side
    np.testing.assert_allclose(
        features_of(book, 1)[:2], [5 / 7, (100 * 1 + 102 * 6) / 7 / 2 - 50.5]
    )


@pytest.mark.parametrize(
    "rows",
    [
        [(Side.BID, BookAction.ADD, 100, 5)],  # no ask side
        [(Side.BID, BookAction.ADD, 101, 5), (Side.ASK, BookAction.ADD, 101, 5)],  # crossed
        [
            (Side.BID, BookAction.ADD, 100, 5),
            (Side.ASK, BookAction.ADD, 101, 5, Flag.GAP_BEFORE),  # invalid until a CLEAR
        ],
    ],
    ids=["one-sided", "crossed", "after-a-gap"],
)
def test_a_book_that_cannot_say_gives_zeros(rows):
    book = L2Book()
    book.apply(deltas(rows))
    assert features_of(book).tolist() == [0.0] * N_BOOK_FEATURES
    assert book_features_ref(book) == [0.0] * N_BOOK_FEATURES


def random_book(seed: int, n: int, window_ticks: int) -> L2Book:
    """A book walked by n random deltas whose prices spread 100x past a small window, so
    levels live both in the dense window and among the far levels, and the touch moves."""
    rng = np.random.default_rng(seed)
    book = L2Book(window_ticks=window_ticks)
    mid = 1_000_000
    rows = []
    for _ in range(n):
        mid += int(rng.integers(-3, 4))
        far = rng.random() < 0.15
        off = int(rng.integers(1, 100 * window_ticks if far else 40))
        side = Side.BID if rng.random() < 0.5 else Side.ASK
        px = mid - off if side == Side.BID else mid + off
        action = BookAction.DELETE if rng.random() < 0.3 else BookAction.ADD
        rows.append((side, action, px, int(rng.integers(1, 500))))
    book.apply(deltas(rows))
    return book


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [1, 3, 5, 7])
def test_numba_reader_matches_the_reference_with_far_levels(seed, levels):
    book = random_book(seed, 700, window_ticks=4096)
    assert book.stats["far_levels"] > 0 and book.stats["window_moves"] > 0
    got = features_of(book, levels)
    want = np.asarray(book_features_ref(book, levels), np.float32)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_far_levels_count_when_the_window_holds_fewer_than_n():
    """Best bid deleted from the window: the next bids are far levels, below the window."""
    book = L2Book(window_ticks=4096)
    book.apply(
        deltas(
            [
                (Side.BID, BookAction.ADD, 10_000_000, 4),
                (Side.ASK, BookAction.ADD, 10_000_002, 2),
                (Side.BID, BookAction.ADD, 9_000_000, 1),  # 10% below: a far level
                (Side.BID, BookAction.ADD, 8_000_000, 3),
                (Side.BID, BookAction.DELETE, 10_000_000, 0),
            ]
        )
    )
    assert book.stats["far_levels"] == 2
    got = features_of(book)
    assert got[3] == 1_000_002  # the spread from the far best bid
    np.testing.assert_allclose(got, book_features_ref(book), rtol=1e-6)
