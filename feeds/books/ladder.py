"""Price ladder: both sides of a book as arrays indexed by price tick.

Prices are int64 ticks, so a level lives at `sizes[px - base]`: setting,
adding or removing a level is one store, and the best price moves by a short
scan only when the best level empties. A sorted array of levels was tried
first and ran at 2M deltas/s on the Binance sample: its updates land a mean
441 levels below the touch, and every insert or delete shifted them.

The window [base, base + span) grows (from Python, between compiled batches)
when a price falls outside it, up to MAX_SPAN ticks; a wider book means a
wrong tick size (DBN prices imported without a definition, say) and is
refused with an error rather than eating memory.

These compiled helpers are the inner loop of `l2.py` and `l3.py`, called
from other compiled code, never once per delta from Python.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from redline.feeds.events import UNDEF_PX

MAX_SPAN = 1 << 25  # ticks per window: 256 MiB per int64 side array at most
MIN_SPAN = 1 << 12

# Slots of the int64 state vector of one book (shared with compiled code).
# LO..HI bounds every index holding a level since the last clear, so a CLEAR
# zeroes that range, not the whole window (the looped MBO benchmark spent a
# third of its time in full-window memsets).
BASE, SPAN, BEST_BID, BEST_ASK, N_BID, N_ASK, LO, HI = range(8)
STATE_LEN = 8
NONE = -1  # best index of an empty side


@nb.njit(cache=True)
def next_best(present: np.ndarray, idx: int, step: int) -> int:
    """First index from `idx` moving by `step` where present[i] != 0, or NONE."""
    n = present.shape[0]
    i = idx
    while 0 <= i < n:
        if present[i] != 0:
            return i
        i += step
    return NONE


@nb.njit(cache=True, inline="always")
def _improve(st, ask: bool, idx: int) -> None:
    if idx < st[LO]:
        st[LO] = idx
    if idx > st[HI]:
        st[HI] = idx
    b = BEST_ASK if ask else BEST_BID
    if st[b] == NONE or (idx < st[b] if ask else idx > st[b]):
        st[b] = idx


@nb.njit(cache=True, inline="always")
def _emptied(present, st, ask: bool, idx: int) -> None:
    nl = N_ASK if ask else N_BID
    b = BEST_ASK if ask else BEST_BID
    st[nl] -= 1
    if idx == st[b]:
        st[b] = next_best(present, idx, 1 if ask else -1) if st[nl] > 0 else NONE


@nb.njit(cache=True)
def set_level(sizes: np.ndarray, st: np.ndarray, ask: bool, idx: int, size: int) -> bool:
    """L2: level at `idx` := `size` (<= 0 removes). False when a removal
    found no level there (nothing changes; callers count it)."""
    old = sizes[idx]
    if size > 0:
        sizes[idx] = size
        if old == 0:
            st[N_ASK if ask else N_BID] += 1
            _improve(st, ask, idx)
        return True
    if old == 0:
        return False
    sizes[idx] = 0
    _emptied(sizes, st, ask, idx)
    return True


@nb.njit(cache=True)
def add_to_level(
    sizes: np.ndarray,
    counts: np.ndarray,
    st: np.ndarray,
    ask: bool,
    idx: int,
    dsize: int,
    dcount: int,
) -> None:
    """L3: add `dsize` lots and `dcount` orders to the level at `idx`; the
    level exists while it holds orders (zero-size orders included)."""
    old = counts[idx]
    counts[idx] = old + dcount
    sizes[idx] += dsize
    if old == 0 and dcount > 0:
        st[N_ASK if ask else N_BID] += 1
        _improve(st, ask, idx)
    elif old > 0 and counts[idx] <= 0:
        counts[idx] = 0
        sizes[idx] = 0
        _emptied(counts, st, ask, idx)


@nb.njit(cache=True, inline="always")
def best(sizes_bid, sizes_ask, st):
    """(bid_px, bid_sz, ask_px, ask_sz), UNDEF_PX and 0 for an empty side."""
    bb, ba = st[BEST_BID], st[BEST_ASK]
    if bb == NONE:
        bpx, bsz = UNDEF_PX, 0
    else:
        bpx, bsz = st[BASE] + bb, sizes_bid[bb]
    if ba == NONE:
        apx, asz = UNDEF_PX, 0
    else:
        apx, asz = st[BASE] + ba, sizes_ask[ba]
    return bpx, bsz, apx, asz


@nb.njit(cache=True, inline="always")
def is_crossed(st) -> bool:
    return st[BEST_BID] != NONE and st[BEST_ASK] != NONE and st[BEST_BID] >= st[BEST_ASK]


@nb.njit(cache=True)
def top_levels(sizes, present, st, ask, depth, out_px, out_sz) -> int:
    """Best `depth` levels into out_px/out_sz, best first; returns how many."""
    i = st[BEST_ASK] if ask else st[BEST_BID]
    step = 1 if ask else -1
    k = 0
    while i != NONE and k < depth:
        out_px[k] = st[BASE] + i
        out_sz[k] = sizes[i]
        k += 1
        i = next_best(present, i + step, step)
    return k


@nb.njit(cache=True)
def clear(arrays, st) -> None:
    """Empty the book: zero the touched range of every array in `arrays`."""
    lo, hi = st[LO], st[HI]
    if lo <= hi:
        for a in arrays:
            a[lo : hi + 1] = 0
    reset(st)


@nb.njit(cache=True)
def reset(st) -> None:
    """Mark the book empty (the caller has zeroed every level it held)."""
    st[BEST_BID] = NONE
    st[BEST_ASK] = NONE
    st[N_BID] = 0
    st[N_ASK] = 0
    st[LO] = st[SPAN]
    st[HI] = -1


def new_state(span: int = MIN_SPAN) -> np.ndarray:
    st = np.zeros(STATE_LEN, np.int64)
    st[SPAN] = span
    st[BEST_BID] = st[BEST_ASK] = NONE
    st[LO], st[HI] = span, -1
    return st


def regrow(arrays: list[np.ndarray], st: np.ndarray, px: int, where: str) -> list[np.ndarray]:
    """New arrays whose window covers `px` and every level now in the book
    (re-centred on `px` when the book is empty). Raises when that needs more
    than MAX_SPAN ticks."""
    base, span = int(st[BASE]), int(st[SPAN])
    if st[N_BID] == 0 and st[N_ASK] == 0:
        span = max(MIN_SPAN, span)
        st[BASE] = px - span // 2
        for a in arrays:
            a[:] = 0
        st[LO], st[HI] = span, -1
        return arrays
    lo, hi = min(base, px), max(base + span, px + 1)
    margin = max((hi - lo) // 2, MIN_SPAN)
    new_span = hi - lo + 2 * margin
    if new_span > MAX_SPAN:
        raise ValueError(
            f"{where}: price {px} ticks lies {hi - lo} ticks from the book's other levels, "
            f"more than the {MAX_SPAN}-tick ladder; is the instrument's tick size right?"
        )
    new_base = lo - margin
    shift = base - new_base
    out = []
    for a in arrays:
        b = np.zeros(new_span, a.dtype)
        b[shift : shift + span] = a
        out.append(b)
    st[BASE], st[SPAN] = new_base, new_span
    for slot in (BEST_BID, BEST_ASK):
        if st[slot] != NONE:
            st[slot] += shift
    st[LO], st[HI] = (st[LO] + shift, st[HI] + shift) if st[LO] <= st[HI] else (new_span, -1)
    return out


def next_window(base: int, span: int, px: int, window_ticks: int, empty: bool) -> tuple[int, int]:
    """(base, span) of the window that takes price `px`: centred on it when the book is
    empty; grown (a power of two, half free) to cover the old window and `px` while that stays
    within `window_ticks`; else `window_ticks` wide, centred on `px` (the new touch)."""
    if empty:
        return px - span // 2, span
    lo, hi = min(base, px), max(base + span, px + 1)
    if 2 * (hi - lo) <= window_ticks:
        new_span = min(window_ticks, 1 << (2 * (hi - lo) - 1).bit_length())
        return lo - (new_span - (hi - lo)) // 2, new_span
    return px - window_ticks // 2, window_ticks


def set_window(st: np.ndarray, base: int, span: int, bids: np.ndarray, asks: np.ndarray) -> None:
    """State of a rebuilt window: `bids` / `asks` the indexes holding a level, ascending."""
    st[BASE], st[SPAN] = base, span
    st[N_BID], st[N_ASK] = len(bids), len(asks)
    st[BEST_BID] = bids[-1] if len(bids) else NONE
    st[BEST_ASK] = asks[0] if len(asks) else NONE
    used = np.concatenate([bids, asks])
    st[LO], st[HI] = (used.min(), used.max()) if len(used) else (span, -1)
