"""L3 (order by order) deltas -> L2 (price level) deltas that keep each change's queue priority.

The L2 venue (venue/l2.py) fills a resting order of ours against the level it joined; with
price levels alone it can only guess whether a cancel came from ahead of us or from behind
(its `power` and `log` models). Order-by-order data say exactly: every resting order has a
priority, the index of the level delta at which it got it (its add, or a modify that lost
priority: a size increase or a price change). The venue's `exact` model compares it with the
index at which our order joined: a decrease from an order that had priority before us
shortens the queue ahead of us, any other goes behind.

Per L3 delta (BookAction on orders, as in feeds/books/l3.py), what comes out:
- ADD: the level's new size; priority: this delta.
- UPDATE (modify): same price and size down keeps priority (one decrease delta with the
  order's priority); size up or a new price loses it (a decrease at the old level with the old
  priority, then an increase at the new level with this delta's priority). An unknown id is
  added (counted).
- DELETE: `sz` lots cancelled (0, or all that rests: the whole order), with its priority.
- TRADE: passed through (the venue's trades; `side` the aggressor's). FILL: dropped and counted
  (the book change comes as its own cancel or modify; CME MDP3, Databento MBO).
- CLEAR: passed through; every order and level forgotten.
A delta whose order is unknown (cancel of an id never added: a capture that starts mid-book)
changes no level and is counted. Flags (LAST ends an atomic batch) stay on the last delta an
L3 delta gives; `src` maps each output delta to the input record it came from.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types
from numba.typed import Dict

from redline.feeds.events import BOOK_DELTA_DTYPE, BookAction, Flag

_ADD, _UPDATE, _DELETE, _FILL, _TRADE, _CLEAR = (
    int(BookAction.ADD), int(BookAction.UPDATE), int(BookAction.DELETE), int(BookAction.FILL),
    int(BookAction.TRADE), int(BookAction.CLEAR),
)  # fmt: skip
_L2_UPDATE, _L2_DELETE = int(BookAction.UPDATE), int(BookAction.DELETE)
_LAST = int(Flag.LAST)
_PX, _SZ, _SIDE, _PRIO = range(4)  # an order's row
# counters
FILLS_DROPPED, UNKNOWN_ORDERS, MODIFIED_UNKNOWN, N_COUNTERS = 0, 1, 2, 3
NO_PRIORITY = -1  # trades and clears


@nb.njit(cache=True)
def _level(levels, side, px, dsz) -> int:
    key = (np.int64(side), px)
    size = levels.get(key, np.int64(0)) + dsz
    if size <= 0:
        if key in levels:
            del levels[key]
        return 0
    levels[key] = size
    return size


@nb.njit(cache=True)
def _emit(o, side, px, size, prio, src, out_px, out_sz, out_side, out_action, out_prio, out_src):
    out_px[o], out_sz[o], out_side[o] = px, size, side
    out_action[o] = _L2_UPDATE if size > 0 else _L2_DELETE
    out_prio[o], out_src[o] = prio, src
    return o + 1


@nb.njit(cache=True)
def _convert(px, sz, oid, side, action, orders, levels, base, counters,
             out_px, out_sz, out_side, out_action, out_prio, out_src):  # fmt: skip
    """One batch; returns how many L2 deltas were written. `base`: the global index of the
    first output delta of this batch (priorities are global, so they survive batches)."""
    o = 0
    for i in range(len(px)):
        a, k = action[i], np.int64(oid[i])
        if a in (_TRADE, _CLEAR):
            out_px[o], out_sz[o], out_side[o], out_action[o] = px[i], sz[i], side[i], a
            out_prio[o], out_src[o] = NO_PRIORITY, i
            o += 1
            if a == _CLEAR:
                orders.clear()
                levels.clear()
            continue
        if a == _FILL:
            counters[FILLS_DROPPED] += 1
            continue
        known = k in orders
        if a == _DELETE and not known:
            counters[UNKNOWN_ORDERS] += 1
            continue
        if known:
            p0, s0, side0, prio0 = orders[k]
            keeps = a == _DELETE or (a == _UPDATE and px[i] == p0 and side[i] == side0
                                     and sz[i] <= s0)  # fmt: skip
            if a == _DELETE:
                left = 0 if sz[i] <= 0 or sz[i] >= s0 else s0 - sz[i]
            elif keeps:
                left = sz[i]  # a size cut keeps its place
            else:
                left = 0  # a new price or more size: out, then in again behind everyone
            if left < s0:
                size = _level(levels, side0, p0, left - s0)
                o = _emit(o, side0, p0, size, prio0, i,
                          out_px, out_sz, out_side, out_action, out_prio, out_src)  # fmt: skip
            if left > 0:
                orders[k] = (p0, left, side0, prio0)
            else:
                del orders[k]
            if keeps:
                continue
        elif a == _UPDATE:
            counters[MODIFIED_UNKNOWN] += 1
        if sz[i] <= 0:
            continue
        prio = base + o  # the delta this order's place dates from
        orders[k] = (px[i], sz[i], np.int64(side[i]), prio)
        size = _level(levels, side[i], px[i], sz[i])
        o = _emit(o, side[i], px[i], size, prio, i,
                  out_px, out_sz, out_side, out_action, out_prio, out_src)  # fmt: skip
    return o


class L3Levels:
    """Stateful over batches: `convert(deltas)` -> (L2 BOOK_DELTA records, priority [n] int64,
    source [n]: the index of the input record each came from).

    Each output record keeps its input's header (ts_event, ts_recv, instrument, seq ...); its
    `order_id` is 0, as for every L2 delta. One instance per instrument."""

    def __init__(self) -> None:
        row = types.UniTuple(types.int64, 4)
        self._orders = Dict.empty(key_type=types.int64, value_type=row)
        self._levels = Dict.empty(key_type=types.UniTuple(types.int64, 2), value_type=types.int64)
        self.counters = np.zeros(N_COUNTERS, np.int64)
        self.emitted = 0  # L2 deltas out so far: the next priority index

    def convert(self, deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if deltas.dtype != BOOK_DELTA_DTYPE:
            raise ValueError(f"L3Levels takes BOOK_DELTA records, not {deltas.dtype}")
        cap = 2 * len(deltas)  # a modify to a new price gives two
        px, sz, side = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int8)
        action, prio, src = (
            np.empty(cap, np.uint8),
            np.empty(cap, np.int64),
            np.empty(cap, np.int64),
        )
        n = _convert(deltas["px"], deltas["sz"], deltas["order_id"], deltas["side"],
                     deltas["action"], self._orders, self._levels, self.emitted, self.counters,
                     px, sz, side, action, prio, src)  # fmt: skip
        out = deltas[src[:n]]  # the headers, copied
        out["px"], out["sz"], out["side"], out["action"] = px[:n], sz[:n], side[:n], action[:n]
        out["order_id"] = 0
        # LAST (end of an atomic batch) only on the last delta an input record gave
        last_of_src = np.ones(n, bool)
        last_of_src[:-1] = src[1:n] != src[: n - 1]
        out["flags"][~last_of_src] &= np.uint8(~_LAST & 0xFF)
        self.emitted += n
        return out, prio[:n].copy(), src[:n].copy()

    def stats(self) -> dict[str, int]:
        return {
            "fills_dropped": int(self.counters[FILLS_DROPPED]),
            "unknown_orders": int(self.counters[UNKNOWN_ORDERS]),
            "modified_unknown": int(self.counters[MODIFIED_UNKNOWN]),
            "resting_orders": len(self._orders),
        }
