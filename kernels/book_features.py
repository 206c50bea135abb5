"""Book features: what an instrument's resting L2 book says beyond its touch (BOOK_FEATURE_NAMES).

`book_features(book, out)` reads a resident `redline.feeds.books.l2.L2Book` where it lies, in one
numba call: the best BOOK_LEVELS levels of each side, merged from the book's dense window and
its far levels by price, without a copy. The workers' feature state calls it after each
BOOK_DELTA and `redline train` replays the same state, so live and replay compute alike.
`book_features_ref` is an independent reference written on the book's public `levels()`.

Definitions, with B and A the lots in the best levels of the bid and ask side, the mid and
spread those of the book's own best bid and ask (ticks), and vwap a side's size-weighted price:
- imbalance: (B - A) / (B + A), in [-1, 1];
- micro vs mid: (vwap_bid * A + vwap_ask * B) / (A + B) - mid, in spreads. With one level this
  is the usual microprice; deeper levels lean it by where the liquidity rests, not only by how
  much there is (the size-only version is imbalance / 2, already an input);
- log depth: log1p(B + A);
- spread: best ask - best bid, in ticks.
All four are 0 while the book cannot say: a side empty, the book crossed, or invalid after a
sequence gap until its next snapshot.

`book_words` / `read_book` carry a book through a worker's snapshot as its levels and validity
(what the features read), and `warm` loads the compiled code before the first delta.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from redline.feeds.books import ladder as ld
from redline.feeds.books.l2 import TOP_DTYPE, L2Book
from redline.feeds.events import BOOK_DELTA_DTYPE, BookAction, Flag, Side
from redline.kernels.feature_names import BOOK_LEVELS, N_BOOK_FEATURES


@nb.njit(cache=True, inline="always")
def _side(sz, i, step, base, sign, key, fsz, f, levels):
    """One side's best `levels` levels: (how many, best px, lots, sum of lots * ticks behind
    the best). `sign` is 1 for bids, -1 for asks, so a better price has the larger sign * px:
    the far keys are exactly that (bid px, -ask px), ascending to the best at `f`."""
    n, best, lots, behind = 0, 0, 0.0, 0.0
    while n < levels and (i != ld.NONE or f >= 0):
        if i != ld.NONE and (f < 0 or sign * (base + i) > key[f]):
            p, s = base + i, sz[i]
            i = ld.next_best(sz, i + step, step)
        else:
            p, s = sign * key[f], fsz[f]
            f -= 1
        if n == 0:
            best = p
        lots += s
        behind += s * sign * (best - p)  # >= 0: ticks away from the touch
        n += 1
    return n, best, lots, behind


@nb.njit(cache=True)
def _features(bsz, asz, st, fkey, fsz, fn, valid, levels, out):
    for k in range(N_BOOK_FEATURES):
        out[k] = 0.0
    if not valid:
        return
    base = st[ld.BASE]
    nb_, bid, b, b_behind = _side(bsz, st[ld.BEST_BID], -1, base, 1, fkey[0], fsz[0],
                                  fn[0] - 1, levels)  # fmt: skip
    na, ask, a, a_behind = _side(asz, st[ld.BEST_ASK], 1, base, -1, fkey[1], fsz[1],
                                 fn[1] - 1, levels)  # fmt: skip
    if nb_ == 0 or na == 0 or ask <= bid:
        return
    spread = float(ask - bid)
    # vwap - mid per side, from offsets to the touch: no large prices subtracted
    vb = -0.5 * spread - b_behind / b
    va = 0.5 * spread + a_behind / a
    out[0] = (b - a) / (b + a)
    out[1] = (vb * a + va * b) / (a + b) / spread
    out[2] = math.log1p(b + a)
    out[3] = spread


def book_features(book: L2Book, out: np.ndarray, levels: int = BOOK_LEVELS) -> None:
    """The book features of `book` as it stands -> out (float32 [N_BOOK_FEATURES]); no
    allocation. Reads the book's arrays in place: the L2 book replaces them when its window
    moves, so they are looked up on every call, never kept."""
    _features(book._bsz, book._asz, book._st, book._fkey, book._fsz, book._fn, book.valid,
              levels, out)  # fmt: skip


def book_features_ref(book: L2Book, levels: int = BOOK_LEVELS) -> list[float]:
    """Plain-Python reference of `book_features`, from the definitions in the module doc."""
    bid_px, bid_sz = book.levels(Side.BID, levels)
    ask_px, ask_sz = book.levels(Side.ASK, levels)
    if not book.valid or not len(bid_px) or not len(ask_px) or ask_px[0] <= bid_px[0]:
        return [0.0] * N_BOOK_FEATURES
    b, a = float(bid_sz.sum()), float(ask_sz.sum())
    mid, spread = (bid_px[0] + ask_px[0]) / 2, float(ask_px[0] - bid_px[0])
    vwap_bid, vwap_ask = float(bid_px @ bid_sz) / b, float(ask_px @ ask_sz) / a
    micro = (vwap_bid * a + vwap_ask * b) / (a + b)
    return [(b - a) / (b + a), (micro - mid) / spread, math.log1p(b + a), spread]


def book_words(book: L2Book | None) -> np.ndarray:
    """A book for a snapshot, int64: has a book (0: none yet, nothing follows but zeros), valid,
    bid levels nb, ask levels na, then bid px [nb], bid lots [nb], ask px [na], ask lots [na]."""
    if book is None:
        return np.array([0, 1, 0, 0], np.int64)
    bid = book.levels(Side.BID, book.depth(Side.BID))
    ask = book.levels(Side.ASK, book.depth(Side.ASK))
    head = np.array([1, book.valid, len(bid[0]), len(ask[0])], np.int64)
    return np.concatenate([head, *bid, *ask])


def read_book(words: np.ndarray, at: int, instrument_id: int) -> tuple[L2Book | None, int]:
    """The book `book_words` wrote at words[at:] and the index past it: a CLEAR, one ADD per
    level and, when it was invalid, a gap mark, applied as any delta is. ValueError when the
    words end inside it."""
    if at + 4 > len(words) or min(words[at + 2 : at + 4]) < 0:
        raise ValueError(f"engine: book state blob ends inside the book of {instrument_id}")
    has, valid, nb, na = (int(v) for v in words[at : at + 4])
    levels = words[at + 4 : at + 4 + 2 * (nb + na)]
    if len(levels) != 2 * (nb + na):
        raise ValueError(f"engine: book state blob ends inside the book of {instrument_id}")
    at += 4 + 2 * (nb + na)
    if not has:
        return None, at
    n = nb + na
    d = np.zeros(1 + n + (not valid), BOOK_DELTA_DTYPE)
    d["instrument_id"] = instrument_id
    d["action"] = [BookAction.CLEAR] + [BookAction.ADD] * n + [BookAction.TRADE] * (not valid)
    d["side"][1 : 1 + n] = [Side.BID] * nb + [Side.ASK] * na
    d["px"][1 : 1 + n] = np.concatenate([levels[:nb], levels[2 * nb : 2 * nb + na]])
    d["sz"][1 : 1 + n] = np.concatenate([levels[nb : 2 * nb], levels[2 * nb + na :]])
    d["flags"][n] = Flag.LAST
    if not valid:  # a TRADE leaves an L2 book as it is; its gap flag invalidates it, as before
        d["flags"][-1] = Flag.GAP_BEFORE
    book = L2Book(instrument_id)
    book.apply(d)
    return book, at


def warm() -> None:
    """Load (or compile) the book's loop and `book_features` for the record views a worker
    hands in, a one-record slice writeable or read-only (numba compiles each apart): the first
    real delta must not pay for it."""
    d = np.zeros(3, BOOK_DELTA_DTYPE)
    d["action"] = BookAction.CLEAR, BookAction.ADD, BookAction.ADD
    d["side"], d["px"], d["sz"] = (0, Side.BID, Side.ASK), (0, 100, 101), (0, 1, 1)
    ro = d.copy()
    ro.flags.writeable = False
    top, out = np.empty(1, TOP_DTYPE), np.zeros(N_BOOK_FEATURES, np.float32)
    for recs in (d, ro):
        book = L2Book()
        for j in range(len(recs)):
            book.apply(recs[j : j + 1], top)
        book_features(book, out)
