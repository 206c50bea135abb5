"""Far levels: the price levels of one book side that lie outside the dense ladder window.

Real books carry levels far from the touch (resting bids at 1% of the mid, asks at ten times
it), so no dense array indexed by tick can hold a whole book. The L2 book keeps a window of
ticks around the touch dense (`ladder.py`: one store per update) and everything else here: a
sorted array of (key, size) per side, whose length is the number of far levels, not the price
range they span. Updates out there are rare (the bulk land within a few hundred ticks of the
touch), so an insert that shifts the array is cheap enough, and the best far level is the
array's last entry.

Compiled helpers, called from the L2 book's compiled loop; growing the arrays is Python's.
"""

from __future__ import annotations

import numba as nb
import numpy as np

OK, MISSING, FULL = 0, 1, 2  # far_set's outcome


@nb.njit(cache=True)
def far_set(key: np.ndarray, sz: np.ndarray, n: np.ndarray, side: int, k: int, size: int) -> int:
    """Level with key `k` := `size` (<= 0 removes) among the first n[side] entries.

    Keys are ascending and the best level is last: a bid's key is its price, an ask's the
    negated price. Updates out here cluster near the window's edge, the end nearest the touch,
    so an insert or removal moves few entries. Returns OK, MISSING (a removal found no level:
    nothing changes) or FULL (an insert found no room: nothing changes, the caller grows the
    arrays and retries)."""
    m = n[side]
    i = np.searchsorted(key[:m], k)
    here = i < m and key[i] == k
    if size > 0:
        if here:
            sz[i] = size
            return OK
        if m == key.shape[0]:
            return FULL
        for j in range(m, i, -1):  # a loop, not a slice copy: no allocation per insert
            key[j] = key[j - 1]
            sz[j] = sz[j - 1]
        key[i], sz[i] = k, size
        n[side] = m + 1
        return OK
    if not here:
        return MISSING
    for j in range(i, m - 1):
        key[j] = key[j + 1]
        sz[j] = sz[j + 1]
    n[side] = m - 1
    return OK


@nb.njit(cache=True)
def far_add(key, sz, ct, n, side: int, k: int, dsize: int, dcount: int) -> int:
    """L3: add `dsize` lots and `dcount` orders to the level with key `k` (keys as in
    `far_set`); the level exists while it holds orders. Returns OK, MISSING (no such level to
    take from: nothing changes) or FULL (no room for a new level: nothing changes)."""
    m = n[side]
    i = np.searchsorted(key[:m], k)
    if i < m and key[i] == k:
        ct[i] += dcount
        sz[i] += dsize
        if ct[i] <= 0:
            for j in range(i, m - 1):
                key[j], sz[j], ct[j] = key[j + 1], sz[j + 1], ct[j + 1]
            n[side] = m - 1
        return OK
    if dcount <= 0:
        return MISSING
    if m == key.shape[0]:
        return FULL
    for j in range(m, i, -1):
        key[j], sz[j], ct[j] = key[j - 1], sz[j - 1], ct[j - 1]
    key[i], sz[i], ct[i] = k, dsize, dcount
    n[side] = m + 1
    return OK


def grown(a: np.ndarray) -> np.ndarray:
    """`a` with twice the room along its last axis, its entries kept."""
    k = a.shape[-1]
    out = np.zeros((*a.shape[:-1], max(2 * k, 16)), a.dtype)
    out[..., :k] = a
    return out
