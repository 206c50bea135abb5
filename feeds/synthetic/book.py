"""The L2 book simulator behind the synthetic market recording.

One instrument, one pass over its arrivals (numba, ~1 µs per event). A latent
mid price wanders in event time with heavy-tailed steps; the book is pulled to
it: each arrival is a trade at the touch, a repricing of the touch toward the
latent mid, or a size change at one level. The book is a state; what is
published is the *difference* between consecutive states (ADD / UPDATE /
DELETE per level), so the deltas rebuild the book exactly, and a quote goes out
whenever the top of book changed. Lost delta batches are followed by a
snapshot (CLEAR + every level) so a consumer can recover.

Prices are kept as per-side "keys" that grow with depth (bid: -px, ask: +px),
so one set of side functions serves both sides.
"""

from __future__ import annotations

import numba
import numpy as np

from redline.feeds.events import BookAction, Flag, Side

DEPTH = 5  # L2 levels per side on the wire ("MBP-5")

# Indexes into the parameter vector handed to the kernel (numba wants flat arrays).
P_START_PX = 0  # initial latent mid, ticks
P_SIGMA = 1  # latent mid step per event, ticks (scale of a Student-t(3) step)
P_BASE_SPREAD = 2  # calm spread, ticks
P_SPREAD_BURST = 3  # extra spread per unit of excess intensity
P_VOL_BURST = 4  # extra mid volatility per unit of excess intensity
P_TRADE = 5  # probability that an arrival is a trade
P_GAP = 6  # probability that the next level down is the adjacent tick
P_SIZE_MEDIAN = 7  # median resting size, lots
P_TRADE_SCALE = 8  # Pareto scale of trade sizes, lots
P_TRADE_ALPHA = 9  # Pareto tail index of trade sizes (lower: heavier tail)
N_PARAMS = 10

_ADD, _UPDATE, _DELETE, _CLEAR = (
    int(BookAction.ADD),
    int(BookAction.UPDATE),
    int(BookAction.DELETE),
    int(BookAction.CLEAR),
)
_BID, _ASK = int(Side.BID), int(Side.ASK)
_SNAPSHOT, _LAST = int(Flag.SNAPSHOT), int(Flag.LAST)


@numba.njit(cache=True)
def _draw(pool: np.ndarray, cursor: np.ndarray) -> float:
    # Pre-drawn numpy randoms keep the stream independent of numba's own RNG.
    x = pool[cursor[0] % pool.size]
    cursor[0] += 1
    return x


@numba.njit(cache=True)
def _fresh_size(params, level, pool_n, cursor) -> int:
    size = params[P_SIZE_MEDIAN] * (1.0 + 0.3 * level) * np.exp(0.6 * _draw(pool_n, cursor))
    return max(1, int(size + 0.5))


@numba.njit(cache=True)
def _fill_deep(keys, sizes, n, params, pool_u, pool_n, cursor) -> None:
    """Extend a side from level `n` down to DEPTH with fresh levels."""
    for k in range(n, DEPTH):
        gap = 1
        while _draw(pool_u, cursor) > params[P_GAP] and gap < 8:
            gap += 1
        keys[k] = keys[k - 1] + gap
        sizes[k] = _fresh_size(params, k, pool_n, cursor)


@numba.njit(cache=True)
def _move_best(keys, sizes, best, params, pool_u, pool_n, cursor) -> None:
    """Make `best` the side's top key: drop better levels, insert it if absent."""
    tmp_k = np.empty(DEPTH + 1, np.int64)
    tmp_s = np.empty(DEPTH + 1, np.int64)
    n = 0
    if keys[0] != best and not (keys[0] < best and _has(keys, best)):
        tmp_k[0] = best
        tmp_s[0] = _fresh_size(params, 0, pool_n, cursor)
        n = 1
    for k in range(DEPTH):
        if keys[k] >= best and n < DEPTH:
            tmp_k[n] = keys[k]
            tmp_s[n] = sizes[k]
            n += 1
    keys[:n] = tmp_k[:n]
    sizes[:n] = tmp_s[:n]
    _fill_deep(keys, sizes, n, params, pool_u, pool_n, cursor)


@numba.njit(cache=True)
def _has(keys, key) -> bool:
    return (keys == key).any()


@numba.njit(cache=True)
def _remove_top(keys, sizes, params, pool_u, pool_n, cursor) -> None:
    keys[: DEPTH - 1] = keys[1:].copy()
    sizes[: DEPTH - 1] = sizes[1:].copy()
    _fill_deep(keys, sizes, DEPTH - 1, params, pool_u, pool_n, cursor)


@numba.njit(cache=True)
def _emit_diff(old_k, old_s, new_k, new_s, sign, side, ev, lost, out, n_out) -> int:
    """Append the level changes old -> new of one side; returns the new count.

    Both key arrays are sorted ascending, so one merge pass finds them."""
    i = 0
    j = 0
    while i < DEPTH or j < DEPTH:
        if j >= DEPTH or (i < DEPTH and old_k[i] < new_k[j]):
            act, key, sz = _DELETE, old_k[i], 0
            i += 1
        elif i >= DEPTH or new_k[j] < old_k[i]:
            act, key, sz = _ADD, new_k[j], new_s[j]
            j += 1
        else:
            act, key, sz = _UPDATE, new_k[j], new_s[j]
            changed = old_s[i] != new_s[j]
            i += 1
            j += 1
            if not changed:
                continue
        out[n_out, 0] = ev
        out[n_out, 1] = sign * key
        out[n_out, 2] = sz
        out[n_out, 3] = side
        out[n_out, 4] = act
        out[n_out, 5] = 0
        out[n_out, 6] = lost
        n_out += 1
    return n_out


@numba.njit(cache=True)
def _emit_snapshot(bid_k, bid_s, ask_k, ask_s, ev, out, n_out) -> int:
    out[n_out, 0] = ev
    out[n_out, 1:] = 0
    out[n_out, 4] = _CLEAR
    out[n_out, 5] = _SNAPSHOT
    n_out += 1
    n_out = _emit_levels(bid_k, bid_s, -1, _BID, ev, out, n_out)
    return _emit_levels(ask_k, ask_s, 1, _ASK, ev, out, n_out)


@numba.njit(cache=True)
def _emit_levels(keys, sizes, sign, side, ev, out, n_out) -> int:
    for k in range(DEPTH):
        out[n_out, 0] = ev
        out[n_out, 1] = sign * keys[k]
        out[n_out, 2] = sizes[k]
        out[n_out, 3] = side
        out[n_out, 4] = _ADD
        out[n_out, 5] = _SNAPSHOT
        out[n_out, 6] = 0
        n_out += 1
    return n_out


@numba.njit(cache=True)
def simulate_book(params, ratio, book_lost, pool_u, pool_n, deltas, quotes, trades, drift, lean):
    """Run one instrument's book over its arrivals.

    ratio[j]: local arrival intensity / mean intensity at arrival j (bursts > 1).
    drift[j]: ticks added to the latent mid at arrival j; lean[j]: added to the probability
    that a trade at arrival j is a buy (the generator's informed flow; zeros: none).
    book_lost[j]: the delta batch of arrival j is lost on the wire (it is still
    emitted, with column 6 = 1, so the caller can burn its sequence numbers);
    the next batch that is not lost is replaced by a snapshot.
    pool_u / pool_n: pre-drawn uniforms / normals, read through one cursor.
    Outputs (int64 rows, preallocated); returns the three counts and the
    randoms used, or all -1 when `deltas` was too small:
      deltas: [event, px, sz, side, action, flags, lost]
      quotes: [event, bid_px, ask_px, bid_sz, ask_sz]
      trades: [event, px, sz, aggressor]
    Arrival 0 is the opening snapshot.
    """
    n_ev = ratio.size
    cursor = np.zeros(1, np.int64)
    base = params[P_BASE_SPREAD]
    m = params[P_START_PX]
    s_cont = base
    bid_k = np.empty(DEPTH, np.int64)
    bid_s = np.empty(DEPTH, np.int64)
    ask_k = np.empty(DEPTH, np.int64)
    ask_s = np.empty(DEPTH, np.int64)
    n_d = 0
    n_q = 0
    n_t = 0
    recovering = True  # arrival 0 opens with a snapshot
    for ev in range(n_ev):
        excess = max(ratio[ev] - 1.0, 0.0)
        if ev > 0:
            # Student-t(3) step: heavy tails, scaled up in bursts.
            z = _draw(pool_n, cursor)
            chi = 0.0
            for _ in range(3):
                chi += _draw(pool_n, cursor) ** 2
            m += params[P_SIGMA] * (1.0 + params[P_VOL_BURST] * excess) * z / np.sqrt(chi / 3.0)
            m += drift[ev]
            target = base * (1.0 + params[P_SPREAD_BURST] * excess)
            s_cont += 0.1 * (target - s_cont) + 0.05 * base * _draw(pool_n, cursor)
        spread = min(max(1, int(s_cont + 0.5)), int(6 * base + 2))
        b_t = int(np.floor(m - spread / 2.0 + 0.5))
        a_t = b_t + spread
        if ev == 0:
            bid_k[0] = -b_t
            ask_k[0] = a_t
            bid_s[0] = _fresh_size(params, 0, pool_n, cursor)
            ask_s[0] = _fresh_size(params, 0, pool_n, cursor)
            _fill_deep(bid_k, bid_s, 1, params, pool_u, pool_n, cursor)
            _fill_deep(ask_k, ask_s, 1, params, pool_u, pool_n, cursor)
        old_bk, old_bs, old_ak, old_as = bid_k.copy(), bid_s.copy(), ask_k.copy(), ask_s.copy()
        if ev > 0:
            u = _draw(pool_u, cursor)
            if u < params[P_TRADE]:
                # Buyers lean in when the latent mid sits above the book's mid.
                mid = 0.5 * (ask_k[0] - bid_k[0])  # keys: ask = +px, bid = -px
                p_buy = min(max(0.5 + (m - mid) / (ask_k[0] + bid_k[0]) + lean[ev], 0.1), 0.9)
                buy = _draw(pool_u, cursor) < p_buy
                keys, sizes = (ask_k, ask_s) if buy else (bid_k, bid_s)
                draw = params[P_TRADE_SCALE] * _draw(pool_u, cursor) ** (
                    -1.0 / params[P_TRADE_ALPHA]
                )
                sz = min(max(1, int(draw)), sizes[0])
                px = keys[0] if buy else -keys[0]
                trades[n_t, 0] = ev
                trades[n_t, 1] = px
                trades[n_t, 2] = sz
                trades[n_t, 3] = _BID if buy else _ASK
                n_t += 1
                if sz == sizes[0]:
                    _remove_top(keys, sizes, params, pool_u, pool_n, cursor)
                else:
                    sizes[0] -= sz
            elif -bid_k[0] != b_t or ask_k[0] != a_t:
                _move_best(bid_k, bid_s, -b_t, params, pool_u, pool_n, cursor)
                _move_best(ask_k, ask_s, a_t, params, pool_u, pool_n, cursor)
            else:
                sizes = bid_s if _draw(pool_u, cursor) < 0.5 else ask_s
                level = 0
                while level < DEPTH - 1 and _draw(pool_u, cursor) < 0.45:
                    level += 1
                # Log-size random walk pulled back to the level's typical size, so a
                # long-lived touch neither dies out nor grows without bound.
                typical = np.log(params[P_SIZE_MEDIAN] * (1.0 + 0.3 * level))
                log_sz = np.log(sizes[level])
                log_sz += 0.15 * (typical - log_sz) + 0.4 * _draw(pool_n, cursor)
                new = max(1, int(np.exp(log_sz) + 0.5))
                if new == sizes[level]:
                    new = new + 1 if (new == 1 or _draw(pool_u, cursor) < 0.5) else new - 1
                sizes[level] = new
        if n_d + 4 * DEPTH + 1 > deltas.shape[0] or n_q >= quotes.shape[0]:
            return -1, -1, -1, -1
        lost = 1 if book_lost[ev] else 0
        if recovering and not lost:
            n_d = _emit_snapshot(bid_k, bid_s, ask_k, ask_s, ev, deltas, n_d)
            recovering = False
        else:
            first = n_d
            n_d = _emit_diff(old_bk, old_bs, bid_k, bid_s, -1, _BID, ev, lost, deltas, n_d)
            n_d = _emit_diff(old_ak, old_as, ask_k, ask_s, 1, _ASK, ev, lost, deltas, n_d)
            assert n_d > first  # every arrival changes the book
            recovering = recovering or lost == 1
        deltas[n_d - 1, 5] |= _LAST
        if (
            ev == 0
            or bid_k[0] != old_bk[0]
            or ask_k[0] != old_ak[0]
            or bid_s[0] != old_bs[0]
            or ask_s[0] != old_as[0]
        ):
            quotes[n_q, 0] = ev
            quotes[n_q, 1] = -bid_k[0]
            quotes[n_q, 2] = ask_k[0]
            quotes[n_q, 3] = bid_s[0]
            quotes[n_q, 4] = ask_s[0]
            n_q += 1
    return n_d, n_q, n_t, cursor[0]
