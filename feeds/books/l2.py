"""L2 order book: price levels from a snapshot plus deltas, compiled with numba.

`L2Book.apply(deltas)` runs one compiled loop over a batch of BOOK_DELTA
records and writes the top of book after every delta into a TOP_DTYPE array,
so the feature stage can read the book state as of any event without a
Python call per delta (measured: bench/bench_books.py).

Any real book fits with bounded memory: a dense window of ticks around the touch holds the
levels that change most (one store per update, `ladder.py`), grown up to `window_ticks` and
moved when the touch walks out of it; levels beyond it (resting bids at 1% of the mid, asks at
ten times it) live in sorted far-level arrays (`far_levels.py`), so memory follows the number
of levels, never the price range they span.

Semantics (L2): ADD/UPDATE set a level's size (size 0 removes it), DELETE
removes it, CLEAR wipes both sides (a snapshot follows), FILL/TRADE do not
touch an L2 book. A delta flagged GAP_BEFORE marks the book invalid until the
next CLEAR. A crossed book (best bid >= best ask) is counted and flagged in
the output after each delta that ends an atomic batch (flag LAST), never
fixed: a crossed book means a dropped or misordered delta upstream.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from redline.feeds.books import far_levels as fl
from redline.feeds.books import ladder as ld
from redline.feeds.events import BOOK_DELTA_DTYPE, UNDEF_PX, BookAction, Flag, Side

TOP_DTYPE = np.dtype(
    [
        ("bid_px", "<i8"),  # UNDEF_PX when the side is empty
        ("bid_sz", "<i8"),
        ("ask_px", "<i8"),
        ("ask_sz", "<i8"),
        ("crossed", "u1"),  # 1 when best bid >= best ask after this delta
        ("valid", "u1"),  # 0 after a gap, until the next CLEAR
    ]
)

# The dense window's largest size in ticks (8 MiB per side, reached only when levels are that
# spread; a real ETHUSDT capture at tick 0.01 used 4 MiB): past it, levels are far levels,
# whose updates cost ~170 ns (a search and a shift) against ~60 for a dense one.
WINDOW_TICKS = 1 << 20

DONE, REWINDOW, FAR_FULL = range(3)  # why a compiled loop returned
NO_BID, NO_ASK = np.iinfo(np.int64).min, UNDEF_PX  # a side without far levels

# Counters shared with the compiled loop.
VALID, CROSSED, GAPS, MISSING, FIRST_CROSSED, APPLIED = range(6)
_N_COUNTERS = 6

_ADD, _UPDATE, _DELETE, _CLEAR = (
    int(BookAction.ADD),
    int(BookAction.UPDATE),
    int(BookAction.DELETE),
    int(BookAction.CLEAR),
)
_ASK = int(Side.ASK)
_LAST, _GAP = int(Flag.LAST), int(Flag.GAP_BEFORE)


def top_columns(top: np.ndarray) -> tuple[np.ndarray, ...]:
    """Column views of a TOP_DTYPE array for the compiled loops: storing
    through views costs ~35 ns/delta less than through a record (measured
    with thread CPU time on the looped MBO run)."""
    return tuple(top[name] for name in TOP_DTYPE.names)


@nb.njit(cache=True, inline="always")
def end_delta(tc, i, top, cnt, flags, action) -> None:
    """What every book does after applying delta `i`, given its top of book `top` (bid_px,
    bid_sz, ask_px, ask_sz): a gap invalidates the book until the next CLEAR (a gap flagged on
    the CLEAR itself is counted and already healed: the snapshot it starts follows), a crossed
    book at a batch end is counted, the top of book is written."""
    bpx, bs, apx, as_ = top
    crossed = bpx != UNDEF_PX and apx != UNDEF_PX and bpx >= apx
    if flags & _GAP:
        cnt[GAPS] += 1
        if action != _CLEAR:
            cnt[VALID] = 0
    if (flags & _LAST) and cnt[VALID] and crossed:
        if cnt[CROSSED] == 0:
            cnt[FIRST_CROSSED] = cnt[APPLIED]
        cnt[CROSSED] += 1
    tc[0][i] = bpx
    tc[1][i] = bs
    tc[2][i] = apx
    tc[3][i] = as_
    tc[4][i] = crossed
    tc[5][i] = cnt[VALID]
    cnt[APPLIED] += 1


@nb.njit(cache=True, inline="always")
def best_with_far(bsz, asz, st, fb):
    """Top of book over the dense window and the far levels' best (`fb`: bid px, bid size,
    ask px, ask size; NO_BID / NO_ASK when a side has none): either may hold the best.
    Scalars, not the far arrays, so the usual delta pays two compares for far levels."""
    base, bb, ba = st[ld.BASE], st[ld.BEST_BID], st[ld.BEST_ASK]
    if bb != ld.NONE and base + bb > fb[0]:
        bpx, bs = base + bb, bsz[bb]
    elif fb[0] != NO_BID:
        bpx, bs = fb[0], fb[1]
    else:
        bpx, bs = UNDEF_PX, 0
    if ba != ld.NONE and base + ba < fb[2]:
        apx, as_ = base + ba, asz[ba]
    elif fb[2] != NO_ASK:
        apx, as_ = fb[2], fb[3]
    else:
        apx, as_ = UNDEF_PX, 0
    return bpx, bs, apx, as_


@nb.njit(cache=True)
def far_best(fkey, fsz, fn, fb) -> None:
    """Refresh `fb` from the far arrays (their best is last: bids by px, asks by -px)."""
    k = fn[0]
    fb[0], fb[1] = (fkey[0, k - 1], fsz[0, k - 1]) if k else (NO_BID, 0)
    k = fn[1]
    fb[2], fb[3] = (-fkey[1, k - 1], fsz[1, k - 1]) if k else (NO_ASK, 0)


@nb.njit(cache=True)
def _apply_l2(side, action, px, sz, flags, start, bsz, asz, st, cnt, tc, fkey, fsz, fn, fb,
              window_ticks):  # fmt: skip
    """Apply deltas[start:]; returns (index it stopped at, why): (len, DONE) when done, else
    the window must grow or move to take a price, or the far levels need room (Python's)."""
    n = side.shape[0]
    base, span = st[ld.BASE], st[ld.SPAN]
    i = start
    while i < n:
        a = action[i]
        f = flags[i]
        if a == _CLEAR:
            ld.clear((bsz, asz), st)
            fn[0] = fn[1] = 0
            far_best(fkey, fsz, fn, fb)
            cnt[VALID] = 1
        elif a == _ADD or a == _UPDATE or a == _DELETE:  # noqa: SIM109 (numba)
            p = px[i]
            idx = p - base
            ask = side[i] == _ASK
            size = 0 if a == _DELETE else sz[i]
            if 0 <= idx < span:
                if not ld.set_level(asz if ask else bsz, st, ask, idx, size):
                    cnt[MISSING] += 1
            else:
                if size > 0:
                    lo, hi = min(base, p), max(base + span, p + 1)
                    if 2 * (hi - lo) <= window_ticks:
                        return i, REWINDOW  # the window can still grow to take it
                    bpx, _, apx, _ = best_with_far(bsz, asz, st, fb)
                    if (apx == UNDEF_PX or p < apx) if ask else (bpx == UNDEF_PX or p > bpx):
                        return i, REWINDOW  # the touch moved out of the window: move it
                s = 1 if ask else 0
                r = fl.far_set(fkey[s], fsz[s], fn, s, -p if ask else p, size)
                if r == fl.FULL:
                    return i, FAR_FULL
                if r == fl.MISSING:
                    cnt[MISSING] += 1
                else:
                    far_best(fkey, fsz, fn, fb)
        end_delta(tc, i, best_with_far(bsz, asz, st, fb), cnt, f, a)
        i += 1
    return i, DONE


class L2Book:
    """Price levels of one instrument. Prices are int64 ticks, sizes lots."""

    def __init__(self, instrument_id: int = 0, window_ticks: int = WINDOW_TICKS) -> None:
        if window_ticks < ld.MIN_SPAN:
            raise ValueError(f"window_ticks must be >= {ld.MIN_SPAN}, got {window_ticks}")
        self.instrument_id = instrument_id
        self.window_ticks = window_ticks
        self._st = ld.new_state()
        self._bsz = np.zeros(ld.MIN_SPAN, np.int64)
        self._asz = np.zeros(ld.MIN_SPAN, np.int64)
        # Far levels: keys [bid px, -ask px] per row, ascending to the best level.
        self._fkey = np.zeros((2, 16), np.int64)
        self._fsz = np.zeros((2, 16), np.int64)
        self._fn = np.zeros(2, np.int64)
        self._fb = np.array([NO_BID, 0, NO_ASK, 0], np.int64)  # the far levels' best
        self._cnt = np.zeros(_N_COUNTERS, np.int64)
        self._cnt[VALID] = 1
        self._cnt[FIRST_CROSSED] = -1
        self.moves = 0  # times the window grew or moved

    def apply(self, deltas: np.ndarray, top: np.ndarray | None = None) -> np.ndarray:
        """Apply BOOK_DELTA records in order; returns the top of book after
        each one (TOP_DTYPE, one row per delta; pass `top` to reuse a buffer)."""
        if deltas.dtype != BOOK_DELTA_DTYPE:
            raise TypeError(f"L2Book.apply wants BOOK_DELTA records, got dtype {deltas.dtype}")
        n = len(deltas)
        if top is None:
            top = np.empty(n, TOP_DTYPE)
        elif top.dtype != TOP_DTYPE or len(top) < n:
            raise ValueError(f"top buffer must be TOP_DTYPE with >= {n} rows")
        side, action = deltas["side"], deltas["action"]
        px, sz, flags = deltas["px"], deltas["sz"], deltas["flags"]
        tc = top_columns(top)
        i = 0
        while True:
            i, why = _apply_l2(side, action, px, sz, flags, i, self._bsz, self._asz,
                               self._st, self._cnt, tc, self._fkey, self._fsz, self._fn, self._fb,
                               self.window_ticks)  # fmt: skip
            if why == DONE:
                return top[:n]
            if why == FAR_FULL:
                self._grow_far()
            else:
                self._rewindow(int(px[i]))

    def _grow_far(self) -> None:
        self._fkey, self._fsz = fl.grown(self._fkey), fl.grown(self._fsz)

    def _rewindow(self, p: int) -> None:
        """Grow the window to take price `p` while it stays within `window_ticks`, else move
        it (at that size) to centre on `p`, the new touch; levels change sides between the
        window and the far arrays as they fall in or out."""
        st = self._st
        levels = [self._side_levels(s) for s in (0, 1)]
        empty = not any(len(px) for px, _ in levels)
        new_base, new_span = ld.next_window(
            int(st[ld.BASE]), int(st[ld.SPAN]), p, self.window_ticks, empty
        )
        self.moves += 1
        dense = [np.zeros(new_span, np.int64) for _ in range(2)]
        far_n = []
        for s, (px, sz) in enumerate(levels):
            inside = (px >= new_base) & (px < new_base + new_span)
            dense[s][px[inside] - new_base] = sz[inside]
            key, fsz = (-px[~inside], sz[~inside]) if s else (px[~inside], sz[~inside])
            order = np.argsort(key, kind="stable")
            while len(key) > self._fkey.shape[1]:
                self._grow_far()
            self._fkey[s, : len(key)], self._fsz[s, : len(key)] = key[order], fsz[order]
            far_n.append(len(key))
        self._fn[:] = far_n
        far_best(self._fkey, self._fsz, self._fn, self._fb)
        self._bsz, self._asz = dense
        ld.set_window(st, new_base, new_span, *(np.flatnonzero(d) for d in dense))

    def _side_levels(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Every level of side `s` (0 bid, 1 ask), dense and far, ascending by price."""
        dense = self._asz if s else self._bsz
        idx = np.flatnonzero(dense)
        key = self._fkey[s, : self._fn[s]]
        px = np.concatenate([idx + self._st[ld.BASE], -key if s else key])
        sz = np.concatenate([dense[idx], self._fsz[s, : self._fn[s]]])
        order = np.argsort(px, kind="stable")
        return px[order], sz[order]

    # --- reading the book (cheap numpy, for features and checks) ---

    @property
    def valid(self) -> bool:
        """False after a sequence gap, until the next snapshot (CLEAR)."""
        return bool(self._cnt[VALID])

    @property
    def stats(self) -> dict[str, int]:
        """Counters: deltas applied, crossed (at batch ends, while valid),
        first_crossed (delta index or -1), gaps, deletes of missing levels, levels held
        outside the window now, times the window grew or moved, its size in ticks."""
        c = self._cnt
        return {
            "applied": int(c[APPLIED]),
            "crossed": int(c[CROSSED]),
            "first_crossed": int(c[FIRST_CROSSED]),
            "gaps": int(c[GAPS]),
            "missing_deletes": int(c[MISSING]),
            "far_levels": int(self._fn.sum()),
            "window_moves": self.moves,
            "window_ticks": int(self._st[ld.SPAN]),
        }

    def depth(self, side: Side) -> int:
        """Number of levels on `side`."""
        ask = side == Side.ASK
        return int(self._st[ld.N_ASK if ask else ld.N_BID] + self._fn[int(ask)])

    def levels(self, side: Side, depth: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Best `depth` levels of `side` as (px, sz), best first."""
        ask = side == Side.ASK
        sizes = self._asz if ask else self._bsz
        px, sz = np.empty(depth, np.int64), np.empty(depth, np.int64)
        k = ld.top_levels(sizes, sizes, self._st, ask, depth, px, sz)
        if not self._fn[int(ask)]:
            return px[:k], sz[:k]
        s = int(ask)
        key = self._fkey[s, : self._fn[s]]
        px = np.concatenate([px[:k], -key if ask else key])
        sz = np.concatenate([sz[:k], self._fsz[s, : self._fn[s]]])
        order = np.argsort(px if ask else -px, kind="stable")[:depth]
        return px[order], sz[order]

    def best(self) -> tuple[int, int, int, int]:
        """(bid_px, bid_sz, ask_px, ask_sz); UNDEF_PX and 0 for an empty side."""
        top = best_with_far(self._bsz, self._asz, self._st, self._fb)
        return tuple(int(v) for v in top)

    def crossed(self) -> bool:
        bpx, _, apx, _ = self.best()
        return bpx != UNDEF_PX and apx != UNDEF_PX and bpx >= apx

    def imbalance(self, depth: int = 1) -> float:
        """Size imbalance over the best `depth` levels, in [-1, 1]."""
        _, bid_sz = self.levels(Side.BID, depth)
        _, ask_sz = self.levels(Side.ASK, depth)
        return imbalance(bid_sz, ask_sz)

    def microprice(self) -> float:
        return microprice(*self.best())


def imbalance(bid_sz: np.ndarray, ask_sz: np.ndarray) -> float:
    """(bid - ask) / (bid + ask) over the given level sizes; 0.0 when empty."""
    b, a = float(np.sum(bid_sz)), float(np.sum(ask_sz))
    return (b - a) / (b + a) if b + a > 0 else 0.0


def microprice(bid_px: int, bid_sz: int, ask_px: int, ask_sz: int) -> float:
    """Size-weighted mid in ticks: leans toward the side with less size
    (the price more likely to trade next). NaN when a side is empty."""
    if bid_px == UNDEF_PX or ask_px == UNDEF_PX or bid_sz + ask_sz <= 0:
        return float("nan")
    return (bid_px * ask_sz + ask_px * bid_sz) / (bid_sz + ask_sz)


def microprices(top: np.ndarray) -> np.ndarray:
    """`microprice` of every row of a TOP_DTYPE array (float64 ticks, NaN
    where a side is empty): the per-event feature without a Python loop."""
    bpx, bsz = top["bid_px"].astype(np.float64), top["bid_sz"].astype(np.float64)
    apx, asz = top["ask_px"].astype(np.float64), top["ask_sz"].astype(np.float64)
    total = bsz + asz
    ok = (top["bid_px"] != UNDEF_PX) & (top["ask_px"] != UNDEF_PX) & (total > 0)
    out = np.full(len(top), np.nan)
    out[ok] = (bpx[ok] * asz[ok] + apx[ok] * bsz[ok]) / total[ok]
    return out
