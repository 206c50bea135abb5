"""L3 order book: order by order, compiled with numba.

Orders live in an open-addressing hash table (a slot-state byte array and one
int64 row per order: id, px, size, side) and
feed a price ladder of per-level size and order count (`ladder.py`), so the
top of book after each delta costs the same as in the L2 book. The batch API
matches `L2Book.apply`: one compiled loop per batch, TOP_DTYPE out.

Per-order semantics (BOOK_DELTA with order_id):
- ADD: a new resting order (an id already resting is replaced; counted).
- UPDATE: modify to the delta's side/px/size (an unknown id is added; counted).
- DELETE: cancel `sz` lots; 0, or all that rests, removes the order.
- FILL, TRADE: information only. Venues that report fills this way (CME MDP3,
  and so Databento MBO) send the book change as its own cancel or modify, so
  applying the fill too would take the size out twice.
- CLEAR: wipe every order (a snapshot follows).
Queue position inside a level is not kept (levels hold size and count).

Like the L2 book, levels near the touch live in a dense window (grown up to `window_ticks`,
moved when the touch walks out of it) and the rest in sorted far-level arrays with their size
and order count (`far_levels.py`): a resting order at any legal price costs one entry.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from redline.feeds.books import far_levels as fl
from redline.feeds.books import ladder as ld
from redline.feeds.books.l2 import (
    DONE,
    FAR_FULL,
    NO_ASK,
    NO_BID,
    REWINDOW,
    TOP_DTYPE,
    WINDOW_TICKS,
    best_with_far,
    end_delta,
    far_best,
    imbalance,
    microprice,
    top_columns,
)
from redline.feeds.events import BOOK_DELTA_DTYPE, UNDEF_PX, BookAction, Side

# Counters shared with the compiled loop (the first six as in l2.py).
VALID, CROSSED, GAPS, MISSING, FIRST_CROSSED, APPLIED, DUP_ADDS, UNKNOWN_MODS, ORDERS, USED = range(
    10
)
_N_COUNTERS = 10

_EMPTY, _FULL, _TOMB = 0, 1, 2  # hash slot states
_ID, _PX, _SZ, _SIDE = range(4)  # columns of the order rows
_MAX_LOAD = 0.6  # live + tombstones per slot before the table is rebuilt
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

_ADD, _UPDATE, _DELETE, _CLEAR = (
    int(BookAction.ADD),
    int(BookAction.UPDATE),
    int(BookAction.DELETE),
    int(BookAction.CLEAR),
)
_ASK = int(Side.ASK)
REHASH = 3  # a fourth reason for the compiled loop to return: the order table is full


@nb.njit(cache=True, inline="always")
def _shift(state) -> np.uint64:
    """Fibonacci hashing keeps the top log2(capacity) bits of id * constant."""
    bits = 0
    while (1 << bits) < state.shape[0]:
        bits += 1
    return np.uint64(64 - bits)


@nb.njit(cache=True, inline="always")
def _slot(state, orders, oid, shift):
    """(slot of `oid` or -1, first free slot on its probe path)."""
    mask = np.int64(state.shape[0] - 1)
    key = np.int64(oid)  # the id's bits, compared as int64
    h = np.int64((np.uint64(oid) * _HASH_MUL) >> shift)  # int64: uint64 + int -> float in numba
    free = np.int64(-1)
    while True:
        s = state[h]
        if s == _EMPTY:
            return -1, (free if free >= 0 else h)
        if s == _TOMB:
            if free < 0:
                free = h
        elif orders[h, _ID] == key:
            return h, free
        h = (h + np.int64(1)) & mask


@nb.njit(cache=True)
def _far_add(fkey, fsz, fct, fn, fb, ask, p, dsize, dcount) -> None:
    """Add `dsize` lots and `dcount` orders at far price `p` (outside the window)."""
    s = 1 if ask else 0
    fl.far_add(fkey[s], fsz[s], fct[s], fn, s, -p if ask else p, dsize, dcount)
    far_best(fkey, fsz, fn, fb)


@nb.njit(cache=True)
def _apply_l3(side, action, px, sz, oid, flags, start, bsz, bct, asz, act, st,
              hstate, orders, cnt, tc, fkey, fsz, fct, fn, fb, window_ticks):  # fmt: skip
    """Apply deltas[start:]; returns (where it stopped, why): (len, DONE) when done, earlier
    when the window must grow or move to take a price (REWINDOW), the far levels need room
    (FAR_FULL) or the order table needs rebuilding (REHASH)."""
    n = side.shape[0]
    base, span = st[ld.BASE], st[ld.SPAN]
    limit = int(hstate.shape[0] * _MAX_LOAD)
    shift = _shift(hstate)
    i = start
    while i < n:
        a = action[i]
        if a == _CLEAR:
            if st[ld.HI] - st[ld.LO] > 4 * cnt[ORDERS]:
                # Sparse book (a snapshot with far-off orders): zero each
                # resting order's level instead of the whole touched range.
                for h in range(hstate.shape[0]):
                    if hstate[h] == _FULL:
                        j = orders[h, _PX] - base
                        if j < 0 or j >= span:
                            continue  # a far level: the far arrays are emptied below
                        if orders[h, _SIDE] == _ASK:
                            asz[j] = 0
                            act[j] = 0
                        else:
                            bsz[j] = 0
                            bct[j] = 0
                ld.reset(st)
            else:
                ld.clear((bsz, bct, asz, act), st)
            fn[0] = fn[1] = 0
            far_best(fkey, fsz, fn, fb)
            hstate[:] = _EMPTY
            cnt[ORDERS] = 0
            cnt[USED] = 0
            cnt[VALID] = 1
        elif a == _ADD or a == _UPDATE or a == _DELETE:  # noqa: SIM109 (numba)
            if a != _DELETE:
                if cnt[USED] >= limit:
                    return i, REHASH
                p = px[i]
                if not 0 <= p - base < span:
                    lo, hi = min(base, p), max(base + span, p + 1)
                    if 2 * (hi - lo) <= window_ticks:
                        return i, REWINDOW  # the window can still grow to take it
                    bpx, _, apx, _ = best_with_far(bsz, asz, st, fb)
                    ask_new = side[i] == _ASK
                    if (apx == UNDEF_PX or p < apx) if ask_new else (bpx == UNDEF_PX or p > bpx):
                        return i, REWINDOW  # the touch moved out of the window: move it
                    if fn[1 if ask_new else 0] >= fkey.shape[1]:
                        return i, FAR_FULL  # before anything changes: a new far level needs room
            h, free = _slot(hstate, orders, oid[i], shift)
            if h >= 0:  # the resting order leaves its level (fully or partly)
                o = orders[h]
                take = o[_SZ]
                gone = True
                if a == _DELETE and 0 < sz[i] < o[_SZ]:
                    take = sz[i]
                    gone = False
                ask_old = o[_SIDE] == _ASK
                old_idx = o[_PX] - base
                if not 0 <= old_idx < span:
                    _far_add(fkey, fsz, fct, fn, fb, ask_old, o[_PX], -take, -1 if gone else 0)
                elif ask_old:
                    ld.add_to_level(asz, act, st, True, old_idx, -take, -1 if gone else 0)
                else:
                    ld.add_to_level(bsz, bct, st, False, old_idx, -take, -1 if gone else 0)
                if gone:
                    hstate[h] = _TOMB
                    cnt[ORDERS] -= 1
                    free = h if free < 0 else free
                else:
                    o[_SZ] -= take
                if a == _ADD:
                    cnt[DUP_ADDS] += 1
            elif a == _DELETE:
                cnt[MISSING] += 1
            elif a == _UPDATE:
                cnt[UNKNOWN_MODS] += 1
            if a != _DELETE:
                ask = side[i] == _ASK
                idx = px[i] - base
                if not 0 <= idx < span:
                    _far_add(fkey, fsz, fct, fn, fb, ask, px[i], sz[i], 1)
                elif ask:
                    ld.add_to_level(asz, act, st, True, idx, sz[i], 1)
                else:
                    ld.add_to_level(bsz, bct, st, False, idx, sz[i], 1)
                if hstate[free] == _EMPTY:
                    cnt[USED] += 1
                hstate[free] = _FULL
                o = orders[free]
                o[_ID], o[_PX], o[_SZ], o[_SIDE] = np.int64(oid[i]), px[i], sz[i], side[i]
                cnt[ORDERS] += 1
        f = flags[i]
        end_delta(tc, i, best_with_far(bsz, asz, st, fb), cnt, f, a)
        i += 1
    return i, DONE


@nb.njit(cache=True)
def _rehash(hstate, orders, nstate, norders) -> int:
    live = 0
    shift = _shift(nstate)
    for h in range(hstate.shape[0]):
        if hstate[h] == _FULL:
            _, free = _slot(nstate, norders, np.uint64(orders[h, _ID]), shift)
            nstate[free] = _FULL
            norders[free] = orders[h]
            live += 1
    return live


class L3Book:
    """Orders and price levels of one instrument (prices in ticks, sizes in lots)."""

    def __init__(self, instrument_id: int = 0, order_capacity: int = 1 << 14,
                 window_ticks: int = WINDOW_TICKS) -> None:  # fmt: skip
        if window_ticks < ld.MIN_SPAN:
            raise ValueError(f"window_ticks must be >= {ld.MIN_SPAN}, got {window_ticks}")
        self.instrument_id = instrument_id
        self.window_ticks = window_ticks
        self._st = ld.new_state()
        self._lad = [np.zeros(ld.MIN_SPAN, np.int64) for _ in range(4)]  # bsz bct asz act
        self._table = _new_table(max(16, 1 << (int(order_capacity) - 1).bit_length()))
        self._cnt = np.zeros(_N_COUNTERS, np.int64)
        self._cnt[VALID] = 1
        self._cnt[FIRST_CROSSED] = -1
        # Far levels: keys [bid px, -ask px] per row, ascending to the best; size; order count.
        self._far = [np.zeros((2, 16), np.int64) for _ in range(3)]
        self._fn = np.zeros(2, np.int64)
        self._fb = np.array([NO_BID, 0, NO_ASK, 0], np.int64)
        self.moves = 0  # times the window grew or moved

    def apply(self, deltas: np.ndarray, top: np.ndarray | None = None) -> np.ndarray:
        """Apply BOOK_DELTA records (with order ids) in order; returns the top
        of book after each one (TOP_DTYPE)."""
        if deltas.dtype != BOOK_DELTA_DTYPE:
            raise TypeError(f"L3Book.apply wants BOOK_DELTA records, got dtype {deltas.dtype}")
        n = len(deltas)
        if top is None:
            top = np.empty(n, TOP_DTYPE)
        elif top.dtype != TOP_DTYPE or len(top) < n:
            raise ValueError(f"top buffer must be TOP_DTYPE with >= {n} rows")
        cols = (deltas["side"], deltas["action"], deltas["px"], deltas["sz"], deltas["order_id"],
                deltas["flags"])  # fmt: skip
        tc = top_columns(top)
        i = 0
        while True:
            i, why = _apply_l3(*cols, i, *self._lad, self._st, *self._table, self._cnt, tc,
                               *self._far, self._fn, self._fb, self.window_ticks)  # fmt: skip
            if why == DONE:
                return top[:n]
            if why == REHASH:
                self._rebuild()
            elif why == FAR_FULL:
                self._far = [fl.grown(a) for a in self._far]
            else:
                self._rewindow(int(deltas["px"][i]))

    def _rewindow(self, p: int) -> None:
        """Grow the window to take price `p` while it stays within `window_ticks`, else move
        it (at that size) to centre on `p`; levels move between the window and the far arrays
        as they fall in or out."""
        st = self._st
        levels = [self._side_levels(s) for s in (0, 1)]
        empty = not any(len(px) for px, _, _ in levels)
        new_base, new_span = ld.next_window(
            int(st[ld.BASE]), int(st[ld.SPAN]), p, self.window_ticks, empty
        )
        self.moves += 1
        lad = [np.zeros(new_span, np.int64) for _ in range(4)]  # bsz bct asz act
        fkey, fsz, fct = self._far
        for s, (px, sz, ct) in enumerate(levels):
            inside = (px >= new_base) & (px < new_base + new_span)
            lad[2 * s][px[inside] - new_base] = sz[inside]
            lad[2 * s + 1][px[inside] - new_base] = ct[inside]
            key = -px[~inside] if s else px[~inside]
            order = np.argsort(key, kind="stable")
            while len(key) >= fkey.shape[1]:
                self._far = [fl.grown(a) for a in self._far]
                fkey, fsz, fct = self._far
            m = len(key)
            fkey[s, :m], fsz[s, :m], fct[s, :m] = key[order], sz[~inside][order], ct[~inside][order]
            self._fn[s] = m
        far_best(fkey, fsz, self._fn, self._fb)
        self._lad = lad
        ld.set_window(st, new_base, new_span, np.flatnonzero(lad[1]), np.flatnonzero(lad[3]))

    def _side_levels(self, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every level of side `s` (0 bid, 1 ask), window and far: px, size, order count."""
        sizes, counts = self._lad[2 * s], self._lad[2 * s + 1]
        idx = np.flatnonzero(counts)
        fkey, fsz, fct = (a[s, : self._fn[s]] for a in self._far)
        px = np.concatenate([idx + self._st[ld.BASE], -fkey if s else fkey])
        return px, np.concatenate([sizes[idx], fsz]), np.concatenate([counts[idx], fct])

    def _rebuild(self) -> None:
        """Drop tombstones, doubling the table when live orders fill a third."""
        live = int(self._cnt[ORDERS])
        cap = len(self._table[0])
        if live * 3 > cap:
            cap *= 2
        new = _new_table(cap)
        self._cnt[USED] = _rehash(*self._table, *new)
        self._table = new

    @property
    def valid(self) -> bool:
        return bool(self._cnt[VALID])

    @property
    def stats(self) -> dict[str, int]:
        """Counters: applied, crossed (batch ends, while valid), first_crossed,
        gaps, missing_cancels, duplicate_adds, unknown_modifies, orders."""
        c = self._cnt
        return {
            "applied": int(c[APPLIED]),
            "crossed": int(c[CROSSED]),
            "first_crossed": int(c[FIRST_CROSSED]),
            "gaps": int(c[GAPS]),
            "missing_cancels": int(c[MISSING]),
            "duplicate_adds": int(c[DUP_ADDS]),
            "unknown_modifies": int(c[UNKNOWN_MODS]),
            "orders": int(c[ORDERS]),
            "far_levels": int(self._fn.sum()),
            "window_moves": self.moves,
        }

    def order(self, order_id: int) -> tuple[int, int, int] | None:
        """(side, px, size) of a resting order, or None."""
        state, orders = self._table
        h, _ = _slot(state, orders, np.uint64(order_id), _shift(state))
        return None if h < 0 else (int(orders[h, _SIDE]), int(orders[h, _PX]), int(orders[h, _SZ]))

    def levels(self, side: Side, depth: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best `depth` levels of `side` as (px, size, order count), best first."""
        ask = side == Side.ASK
        bsz, bct, asz, act = self._lad
        sizes, counts = (asz, act) if ask else (bsz, bct)
        px, sz = np.empty(depth, np.int64), np.empty(depth, np.int64)
        k = ld.top_levels(sizes, counts, self._st, ask, depth, px, sz)
        ct = counts[px[:k] - self._st[ld.BASE]]
        s = int(ask)
        if not self._fn[s]:
            return px[:k], sz[:k], ct.copy()
        fkey, fsz, fct = (a[s, : self._fn[s]] for a in self._far)
        px = np.concatenate([px[:k], -fkey if ask else fkey])
        sz, ct = np.concatenate([sz[:k], fsz]), np.concatenate([ct, fct])
        order = np.argsort(px if ask else -px, kind="stable")[:depth]
        return px[order], sz[order], ct[order]

    def best(self) -> tuple[int, int, int, int]:
        """(bid_px, bid_sz, ask_px, ask_sz); UNDEF_PX and 0 for an empty side."""
        top = best_with_far(self._lad[0], self._lad[2], self._st, self._fb)
        return tuple(int(v) for v in top)

    def crossed(self) -> bool:
        bpx, _, apx, _ = self.best()
        return bpx != UNDEF_PX and apx != UNDEF_PX and bpx >= apx

    def imbalance(self, depth: int = 1) -> float:
        return imbalance(self.levels(Side.BID, depth)[1], self.levels(Side.ASK, depth)[1])

    def microprice(self) -> float:
        return microprice(*self.best())


def _new_table(cap: int) -> tuple[np.ndarray, np.ndarray]:
    assert cap & (cap - 1) == 0, "order table capacity must be a power of two"
    # One 32-byte row per order (id, px, size, side): one cache line per
    # lookup, where five parallel arrays cost up to five.
    return np.zeros(cap, np.uint8), np.zeros((cap, 4), np.int64)
