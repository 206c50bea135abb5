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
"""

from __future__ import annotations

import numba as nb
import numpy as np

from redline.feeds.books import ladder as ld
from redline.feeds.books.l2 import (
    TOP_DTYPE,
    end_delta,
    imbalance,
    microprice,
    top_columns,
)
from redline.feeds.events import BOOK_DELTA_DTYPE, BookAction, Side

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
def _apply_l3(side, action, px, sz, oid, flags, start, bsz, bct, asz, act, st,
              hstate, orders, cnt, tc):  # fmt: skip
    """Apply deltas[start:]; returns where it stopped: len when done, earlier
    when a price is outside the ladder or the order table needs rebuilding."""
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
                        if orders[h, _SIDE] == _ASK:
                            asz[j] = 0
                            act[j] = 0
                        else:
                            bsz[j] = 0
                            bct[j] = 0
                ld.reset(st)
            else:
                ld.clear((bsz, bct, asz, act), st)
            hstate[:] = _EMPTY
            cnt[ORDERS] = 0
            cnt[USED] = 0
            cnt[VALID] = 1
        elif a == _ADD or a == _UPDATE or a == _DELETE:  # noqa: SIM109 (numba)
            h, free = _slot(hstate, orders, oid[i], shift)
            if a != _DELETE:
                idx = px[i] - base
                if idx < 0 or idx >= span or cnt[USED] >= limit:
                    return i
            if h >= 0:  # the resting order leaves its level (fully or partly)
                o = orders[h]
                ask_old = o[_SIDE] == _ASK
                old_idx = o[_PX] - base
                take = o[_SZ]
                gone = True
                if a == _DELETE and 0 < sz[i] < o[_SZ]:
                    take = sz[i]
                    gone = False
                if ask_old:
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
                if ask:
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
        end_delta(tc, i, ld.best(bsz, asz, st), cnt, f)
        i += 1
    return i


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

    def __init__(self, instrument_id: int = 0, order_capacity: int = 1 << 14) -> None:
        self.instrument_id = instrument_id
        self._st = ld.new_state()
        self._lad = [np.zeros(ld.MIN_SPAN, np.int64) for _ in range(4)]  # bsz bct asz act
        self._table = _new_table(max(16, 1 << (int(order_capacity) - 1).bit_length()))
        self._cnt = np.zeros(_N_COUNTERS, np.int64)
        self._cnt[VALID] = 1
        self._cnt[FIRST_CROSSED] = -1

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
            i = _apply_l3(*cols, i, *self._lad, self._st, *self._table, self._cnt, tc)
            if i == n:
                return top[:n]
            if self._cnt[USED] >= int(len(self._table[0]) * _MAX_LOAD):
                self._rebuild()
            else:
                self._lad = ld.regrow(
                    self._lad, self._st, int(deltas["px"][i]), f"instrument {self.instrument_id}"
                )

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
        }

    def order(self, order_id: int) -> tuple[int, int, int] | None:
        """(side, px, size) of a resting order, or None."""
        state, orders = self._table
        h, _ = _slot(state, orders, np.uint64(order_id), _shift(state))
        return None if h < 0 else (int(orders[h, _SIDE]), int(orders[h, _PX]), int(orders[h, _SZ]))

    def levels(self, side: Side, depth: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best `depth` levels of `side` as (px, size, order count), best first."""
        bsz, bct, asz, act = self._lad
        sizes, counts = (asz, act) if side == Side.ASK else (bsz, bct)
        px, sz = np.empty(depth, np.int64), np.empty(depth, np.int64)
        k = ld.top_levels(sizes, counts, self._st, side == Side.ASK, depth, px, sz)
        return px[:k], sz[:k], counts[px[:k] - self._st[ld.BASE]].copy()

    def best(self) -> tuple[int, int, int, int]:
        """(bid_px, bid_sz, ask_px, ask_sz); UNDEF_PX and 0 for an empty side."""
        return tuple(int(v) for v in ld.best(self._lad[0], self._lad[2], self._st))

    def crossed(self) -> bool:
        return bool(ld.is_crossed(self._st))

    def imbalance(self, depth: int = 1) -> float:
        return imbalance(self.levels(Side.BID, depth)[1], self.levels(Side.ASK, depth)[1])

    def microprice(self) -> float:
        return microprice(*self.best())


def _new_table(cap: int) -> tuple[np.ndarray, np.ndarray]:
    assert cap & (cap - 1) == 0, "order table capacity must be a power of two"
    # One 32-byte row per order (id, px, size, side): one cache line per
    # lookup, where five parallel arrays cost up to five.
    return np.zeros(cap, np.uint8), np.zeros((cap, 4), np.int64)
