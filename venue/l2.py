"""A venue that fills against the recorded L2 book (price levels) with a queue-position model,
in one compiled loop with the strategy and pre-trade risk, as venue/l1.py does for quotes.

Events: BOOK_DELTA records (L2: ADD/UPDATE set a level's size, DELETE removes it, CLEAR wipes
the book before a snapshot) and trades (TRADE records, or BOOK_DELTA with action TRADE; `side`
is the aggressor's), merged in `ts_recv` order. Per event:
1. orders and cancels that reached the venue before it meet the book as it was then; while
   the book is unknown (after a delta flagged GAP_BEFORE, until the snapshot that follows has
   ended: its CLEAR, then a delta flagged LAST) they wait and meet the first book after it;
2. the event moves the book, and the queue ahead of our resting orders (below); a trade that
   reaches our price fills what the queue ahead does not take; at the end of an atomic batch
   (flag LAST) an opposite side that reached our price (a level crossing) fills us;
3. acks due by now move the position the strategy sees;
4. at the end of an atomic batch of deltas, with both sides shown (and on a timer, the first
   such in each window), the strategy steps on the touch as on a quote in l1.py.

Marketable orders walk the levels: a market buy takes the best ask, then the next level up,
until it is filled (what is left expires); a limit buy the same, up to its price (GTC rests the
rest, IOC cancels it); post-only is refused if it would cross. What an order takes from a level
is gone until a delta shows that level again: the same liquidity never fills two orders.

Queue position. A resting order joins the queue behind the size shown at its price when it
arrives (`queue ahead`, lots). A trade at its price by an aggressor of the other side first
takes the queue ahead, then fills our orders there in the order they arrived, what our earlier
ones took not counted again; a trade through our price (a sell below our bid) fills us from
its size. The queue ahead never exceeds the level's size. How cancels move it (`--queue`,
venue/l2_queue.py): risk_averse (not at all), power (n) / log (a share by the queue ahead
against the one behind, as hftbacktest's probabilistic models) or exact (L3 data, which
l2_backtest.py turns into level deltas that carry each order's priority: the priority of the
order cancelled says whether it was ahead of ours; after a snapshot everyone in it counts as
ahead).

Levels live in a dense window of `window_ticks` per side and instrument, centred on the first
level seen after each CLEAR (a snapshot re-centres it); a level outside it is left out and
counted (`levels_outside_window`).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from redline.feeds.events import BookAction, Flag, Side
from redline.venue import l1
from redline.venue.decide import decide, take_acks
from redline.venue.l1 import ASK, ASZ, BID, BSZ, C_INST, C_LIMIT, C_QORD, C_QTY, C_STATUS, HAS
from redline.venue.l2_queue import MODELS, level_moved
from redline.venue.latency import at, drawn
from redline.venue.risk import Risk

WINDOW_TICKS = 1 << 16  # ±32,768 ticks around the first price: ±12% of ETHUSDT at tick 0.01

# Columns of the per-instrument level state (L_STEP: when the strategy's timer is next due;
# L_PRIO: the largest L3 priority applied so far, -1 on L2 data; L_L2: 1 once it applied an
# L2 level delta, one without a priority).
L_BASE, L_BB, L_BA, L_VALID, L_REBUILD, L_INIT, L_SINCE, L_STEP, L_PRIO, L_L2 = range(10)
# Slots of the L2 counters vector.
OUTSIDE, HELD, N_L2 = 0, 1, 2

_ADD, _UPDATE, _DELETE, _CLEAR, _TRADE = (
    int(BookAction.ADD), int(BookAction.UPDATE), int(BookAction.DELETE), int(BookAction.CLEAR),
    int(BookAction.TRADE),
)  # fmt: skip
_S_BID, _S_ASK = int(Side.BID), int(Side.ASK)
_LAST, _GAP = int(Flag.LAST), int(Flag.GAP_BEFORE)
_MARKET, _IOC, _POST = int(l1.Kind.MARKET), int(l1.Kind.IOC), int(l1.Kind.POST_ONLY)
_FILLED, _EXPIRED, _RESTING = int(l1.Status.FILLED), int(l1.Status.EXPIRED), int(l1.Status.RESTING)
_CROSSED, _FULL = int(l1.Status.POST_ONLY_CROSSED), int(l1.Status.OPEN_ORDERS_FULL)


class L2State(l1.VenueState):
    """l1.VenueState plus the levels, their window and the queue model."""

    def __init__(self, n_instruments: int, bar_ns: int, limits: Risk, model: str = "risk_averse",
                 power: float = 2.0, window_ticks: int = WINDOW_TICKS) -> None:  # fmt: skip
        super().__init__(n_instruments, bar_ns, limits)
        if model not in MODELS:
            raise ValueError(f"--queue {model!r}: give one of {', '.join(MODELS)}")
        if not (math.isfinite(power) and power > 0):
            raise ValueError(f"--queue power={power}: give a number > 0")
        if window_ticks < 16:
            raise ValueError(f"window_ticks must be >= 16, got {window_ticks}")
        self.levels = np.zeros((n_instruments, 2, window_ticks), np.int64)
        self.lstate = np.zeros((n_instruments, 10), np.int64)
        self.lstate[:, L_BB] = self.lstate[:, L_BA] = self.lstate[:, L_PRIO] = -1
        self.lstate[:, L_STEP] = np.iinfo(np.int64).min
        self.lstate[:, L_VALID] = 1
        self.queue = np.array([MODELS.index(model), power], np.float64)
        self.cnt2 = np.zeros(N_L2, np.int64)


@nb.njit(cache=True, inline="always")
def _set(lv, ls, j, s, idx, size) -> None:
    """Level `idx` of side `s` (0 bid, 1 ask) of instrument `j` to `size`; the best follows."""
    lv[j, s, idx] = size
    w = lv.shape[2]
    if s == 0:
        bb = ls[j, L_BB]
        if size > 0:
            if idx > bb:
                ls[j, L_BB] = idx
        elif idx == bb:
            b = idx - 1
            while b >= 0 and lv[j, 0, b] == 0:
                b -= 1
            ls[j, L_BB] = b
    else:
        ba = ls[j, L_BA]
        if size > 0:
            if ba < 0 or idx < ba:
                ls[j, L_BA] = idx
        elif idx == ba:
            a = idx + 1
            while a < w and lv[j, 1, a] == 0:
                a += 1
            ls[j, L_BA] = a if a < w else -1


@nb.njit(cache=True, inline="always")
def _touch(lv, ls, book, j) -> None:
    """Instrument `j`'s top of book (l1's layout, which risk and equity read) from its levels;
    an empty side keeps its last price, size 0."""
    base, bb, ba = ls[j, L_BASE], ls[j, L_BB], ls[j, L_BA]
    if bb >= 0:
        book[j, BID], book[j, BSZ] = base + bb, lv[j, 0, bb]
    else:
        book[j, BSZ] = 0
    if ba >= 0:
        book[j, ASK], book[j, ASZ] = base + ba, lv[j, 1, ba]
    else:
        book[j, ASZ] = 0
    book[j, HAS] = 1 if bb >= 0 and ba >= 0 and ls[j, L_VALID] == 1 else 0


@nb.njit(cache=True, inline="always")
def _trade(j, t, aggressor, px, size, legs, fee_rates, pos, cash, fees, value, ex, ex_fee, qa,
           qt, acks, rest, rest_n, cnt) -> None:  # fmt: skip
    """A trade of `size` lots at `px`: the queue ahead of our orders at its price takes it
    first, our orders there (and beyond its price) fill from the rest, in arrival order."""
    taken = 0
    m = 0
    for slot in range(cnt[l1.N_REST]):
        k = rest[slot]
        keep = True
        q, lim = ex[k, C_QORD], ex[k, C_LIMIT]
        buy = q > 0
        hits = aggressor != (_S_BID if buy else _S_ASK)  # a seller hits bids, a buyer asks
        left = size - taken
        if ex[k, C_INST] == j and hits and left > 0 and (px <= lim if buy else px >= lim):
            if px == lim:
                qt[k] += size
                ahead = qa[k] - left
                qa[k] = max(ahead, 0.0)
                f = min(abs(q) - abs(ex[k, C_QTY]), int(max(-ahead, 0.0)))
            else:  # through our price: all at our price went first
                f = min(abs(q) - abs(ex[k, C_QTY]), left)
            if f > 0:
                taken += f
                keep = not _rest_fill(k, f, t, legs, fee_rates, pos, cash, fees, value, ex,
                                      ex_fee, acks, rest_n, cnt)  # fmt: skip
        if keep:
            rest[m] = k
            m += 1
    cnt[l1.N_REST] = m


@nb.njit(cache=True, inline="always")
def _rest_fill(k, f, t, legs, fee_rates, pos, cash, fees, value, ex, ex_fee, acks, rest_n,
               cnt) -> bool:  # fmt: skip
    """`f` lots of resting row `k` filled at its price at `t` (maker); True when it is done."""
    buy = ex[k, C_QORD] > 0
    l1._fill(k, f if buy else -f, ex[k, C_LIMIT], fee_rates[1], pos, cash, fees, value, ex, ex_fee)
    done = ex[k, C_QTY] == ex[k, C_QORD]
    l1._ack(t + at(legs[3], legs[4], t), k, f if buy else -f, 1 if done else 0, acks, cnt)
    if done:
        ex[k, C_STATUS] = _FILLED
        rest_n[ex[k, C_INST]] -= 1
    return done


@nb.njit(cache=True, inline="always")
def _crossings(j, t, legs, fee_rates, lv, ls, pos, cash, fees, value, ex, ex_fee, acks, rest,
               rest_n, cnt) -> None:  # fmt: skip
    """Our orders resting on `j` whose opposite side reached their price: they fill at it from
    the levels up to it, in arrival order, taking what they fill from those levels."""
    base = ls[j, L_BASE]
    m = 0
    for slot in range(cnt[l1.N_REST]):
        k = rest[slot]
        keep = True
        if ex[k, C_INST] == j:
            q, lim = ex[k, C_QORD], ex[k, C_LIMIT]
            s = 1 if q > 0 else 0
            idx = ls[j, L_BA] if q > 0 else ls[j, L_BB]
            f = 0
            while idx >= 0 and (base + idx <= lim if q > 0 else base + idx >= lim):
                g = min(abs(q) - abs(ex[k, C_QTY]) - f, lv[j, s, idx])
                f += g
                _set(lv, ls, j, s, idx, lv[j, s, idx] - g)
                if abs(q) - abs(ex[k, C_QTY]) == f:
                    break
                idx = ls[j, L_BA] if q > 0 else ls[j, L_BB]
            if f > 0:
                keep = not _rest_fill(k, f, t, legs, fee_rates, pos, cash, fees, value, ex,
                                      ex_fee, acks, rest_n, cnt)  # fmt: skip
        if keep:
            rest[m] = k
            m += 1
    cnt[l1.N_REST] = m


@nb.njit(cache=True, inline="always")
def _arrive(k, t_venue, t_match, legs, fee_rates, lv, ls, book, pos, cash, fees, value, ex,
            ex_fee, qa, qt, qj, acks, rest, rest_n, cnt) -> None:  # fmt: skip
    """Order row `k` reaches the venue at `t_venue` and meets the book at `t_match` (later
    when it waited out a gap): it walks the levels it crosses, the rest rests (queue ahead:
    the size shown at its price; join mark: the largest L3 priority so far) or goes, as its
    kind says."""
    j, q, kind, lim = ex[k, C_INST], ex[k, C_QORD], ex[k, l1.C_KIND], ex[k, C_LIMIT]
    ex[k, l1.C_VENUE] = t_venue
    ack_t = t_match + at(legs[3], legs[4], t_match)
    buy = q > 0
    s = 1 if buy else 0  # the side it takes from
    base = ls[j, L_BASE]
    idx = ls[j, L_BA] if buy else ls[j, L_BB]
    crosses = idx >= 0 and (kind == _MARKET or (base + idx <= lim if buy else base + idx >= lim))
    if kind == _POST and crosses:
        ex[k, C_STATUS] = _CROSSED
        l1._ack(ack_t, k, 0, 1, acks, cnt)
        return
    f = 0
    while crosses and f < abs(q):
        g = min(abs(q) - f, lv[j, s, idx])
        l1._fill(k, g if buy else -g, base + idx, fee_rates[0], pos, cash, fees, value, ex, ex_fee)
        f += g
        _set(lv, ls, j, s, idx, lv[j, s, idx] - g)
        idx = ls[j, L_BA] if buy else ls[j, L_BB]
        crosses = idx >= 0 and (
            kind == _MARKET or (base + idx <= lim if buy else base + idx >= lim)
        )
    _touch(lv, ls, book, j)
    dq = f if buy else -f
    if f == abs(q):
        ex[k, C_STATUS] = _FILLED
    elif kind in (_MARKET, _IOC):
        ex[k, C_STATUS] = _EXPIRED
    elif cnt[l1.N_REST] >= rest.shape[0]:
        ex[k, C_STATUS] = _FULL
    else:
        ex[k, C_STATUS] = _RESTING
        rest[cnt[l1.N_REST]] = k
        cnt[l1.N_REST] += 1
        rest_n[j] += 1
        own = lim - base
        qa[k] = float(lv[j, 1 - s, own]) if 0 <= own < lv.shape[2] else 0.0
        qt[k] = 0.0
        qj[k] = ls[j, L_PRIO]
        l1._ack(ack_t, k, dq, 0, acks, cnt)
        return
    l1._ack(ack_t, k, dq, 1, acks, cnt)


@nb.njit(cache=True, inline="always")
def _arrivals(t, legs, fee_rates, lv, ls, book, pos, cash, fees, value, ex, ex_fee, qa, qt,
              qj, orders, acks, rest, rest_n, cnt, cnt2) -> None:  # fmt: skip
    """Orders and cancels that reached the venue before `t` meet the book, in the order they
    arrived; the first whose instrument's book is unknown (a gap) stops them: they wait."""
    while cnt[l1.O_HEAD] < cnt[l1.O_TAIL]:
        o = cnt[l1.O_HEAD] % orders.shape[0]
        t_venue, k = orders[o, 0], orders[o, 2]
        if t_venue >= t:
            return
        j = ex[k, C_INST]
        if ls[j, L_VALID] == 0 or ls[j, L_REBUILD] == 1:
            return
        t_match = max(t_venue, ls[j, L_SINCE])
        if t_venue < ls[j, L_SINCE]:
            cnt2[HELD] += 1  # it reached the venue while the book was unknown
        if orders[o, 1] == l1.NEW:
            _arrive(k, t_venue, t_match, legs, fee_rates, lv, ls, book, pos, cash, fees, value,
                    ex, ex_fee, qa, qt, qj, acks, rest, rest_n, cnt)  # fmt: skip
        else:
            l1._cancel(k, t_match, at(legs[3], legs[4], t_match), ex, acks, rest, rest_n, cnt)
        cnt[l1.O_HEAD] += 1


@nb.njit
def run_chunk(quoting, step, quote, args) -> int:
    """One chunk of L2 events (`iid`: instrument ids, each in the sorted `ids`; action TRADE:
    a trade, `side` its aggressor). `step_ns` > 0: the strategy steps on an instrument at most
    once per `step_ns` of data time (a timer, as hftbacktest's elapse), on its first whole
    book in each such window; 0: on every one. `legs`: latency.Legs.arrays(); the rest as
    l1.run_chunk, with the levels (`lv`, `ls`), the queue model `qm`, each event's L3
    priority (`prio`: -1 none; empty on L2 data) and each order row's queue ahead, traded
    volume and join mark (`qa`, `qt`, `qj`). Returns how many events it ran: it stops early
    when the acks' ring or `ex` is full (l1.room), and, on L2 data, before a delta with an
    order id (`oid`; L3 data: the caller turns them into levels with priorities and runs the
    rest)."""
    (ts, iid, ids, flags, side, action, px, sz, oid, prio, step_ns, state, p, legs, scratch,
     fee_rates, okind, offset, value, bar_ns, r, window, cursor, lv, ls, qm, book, pos, seen,
     pending, working, rest_n, cash, fees, orders, acks, rest, cnt, cnt2, ex, ex_fee, qa, qt,
     qj, bars_ts, bars_eq) = args  # fmt: skip
    l3 = prio.shape[0] > 0
    w = lv.shape[2]
    for i in range(ts.shape[0]):
        if not l1.room(cnt, acks, ex):
            return i
        if not l3 and oid[i] != 0 and action[i] != _TRADE:  # the row is read here anyway
            return i
        t, j, a, f = ts[i], np.searchsorted(ids, iid[i]), action[i], flags[i]
        if f & _GAP:
            ls[j, L_VALID] = 0
        # 1. arrivals before this event meet the book before it, once the book is known
        if cnt[l1.O_HEAD] < cnt[l1.O_TAIL] and orders[cnt[l1.O_HEAD] % orders.shape[0], 0] < t:
            _arrivals(t, legs, fee_rates, lv, ls, book, pos, cash, fees, value, ex, ex_fee, qa,
                      qt, qj, orders, acks, rest, rest_n, cnt, cnt2)  # fmt: skip
        if t >= cnt[l1.NEXT_BAR]:
            b = cnt[l1.N_BARS]
            bars_ts[b], bars_eq[b] = t, l1.equity(book, pos, cash, value)
            cnt[l1.N_BARS] += 1
            cnt[l1.NEXT_BAR] = (t // bar_ns + 1) * bar_ns
        # 2. the event moves the book and our queues
        live = ls[j, L_VALID] == 1 and ls[j, L_REBUILD] == 0
        if a == _TRADE:
            if live and rest_n[j] > 0:
                _trade(j, t, side[i], px[i], sz[i], legs, fee_rates, pos, cash, fees, value, ex,
                       ex_fee, qa, qt, acks, rest, rest_n, cnt)  # fmt: skip
        elif a == _CLEAR:
            lv[j, :, :] = 0
            ls[j, L_BB] = ls[j, L_BA] = -1
            ls[j, L_VALID], ls[j, L_REBUILD] = 1, 1
            ls[j, L_INIT] = 0  # the window centres on the snapshot's first level
        elif a == _ADD or a == _UPDATE or a == _DELETE:  # noqa: SIM109 (numba)
            if ls[j, L_INIT] == 0:
                ls[j, L_BASE], ls[j, L_INIT] = px[i] - w // 2, 1
            s = 1 if side[i] == _S_ASK else 0
            idx = px[i] - ls[j, L_BASE]
            pr = prio[i] if l3 else -1
            if 0 <= idx < w:
                prev = lv[j, s, idx]
                new = 0 if a == _DELETE else sz[i]
                _set(lv, ls, j, s, idx, new)
                if live and rest_n[j] > 0 and new < prev:
                    level_moved(j, s, px[i], prev, new, pr, qm, ex, qa, qt, qj, rest, cnt)
            elif a != _DELETE:
                cnt2[OUTSIDE] += 1
            if pr > ls[j, L_PRIO]:  # an order that rests from here on
                ls[j, L_PRIO] = pr
            elif pr < 0:  # an L2 level delta: L3 later on this instrument is refused
                ls[j, L_L2] = 1
        batch_end = a != _TRADE and (f & _LAST) != 0
        if batch_end and ls[j, L_REBUILD] == 1:  # the snapshot ended: queues meet its book
            ls[j, L_REBUILD], ls[j, L_SINCE] = 0, t
            for slot in range(cnt[l1.N_REST]):
                k = rest[slot]
                own = ex[k, C_LIMIT] - ls[j, L_BASE]
                if ex[k, C_INST] == j:
                    shown = lv[j, 0 if ex[k, C_QORD] > 0 else 1, own] if 0 <= own < w else 0
                    qa[k] = min(qa[k], float(shown))
                    qt[k] = 0.0
                    qj[k] = ls[j, L_PRIO]  # exact: who in the snapshot came first is unknown
            _touch(lv, ls, book, j)  # and what waited for it meets it now
            _arrivals(t + 1, legs, fee_rates, lv, ls, book, pos, cash, fees, value, ex, ex_fee,
                      qa, qt, qj, orders, acks, rest, rest_n, cnt, cnt2)  # fmt: skip
        known = ls[j, L_VALID] == 1
        if batch_end and known:
            if rest_n[j] > 0:
                _crossings(j, t, legs, fee_rates, lv, ls, pos, cash, fees, value, ex, ex_fee,
                           acks, rest, rest_n, cnt)  # fmt: skip
            _touch(lv, ls, book, j)
        # 3. acks due by now (the test first: a call per event costs its ~7 arrays' refcounts)
        if cnt[l1.A_HEAD] < cnt[l1.A_TAIL] and acks[cnt[l1.A_HEAD] % acks.shape[0], 0] <= t:
            take_acks(t, seen, pending, working, acks, ex, cnt)
        # 4. the strategy, at the end of a batch, on a whole book with both sides, when due
        if not (batch_end and known and book[j, HAS] == 1 and t >= ls[j, L_STEP]):
            continue
        if step_ns > 0:
            ls[j, L_STEP] = (t // step_ns + 1) * step_ns
        dec = drawn(legs[0], cnt[l1.DECISIONS])
        cnt[l1.DECISIONS] += 1
        scratch[0] = dec
        scratch[1] = at(legs[1], legs[2], t + dec)
        decide(t, j, book[j, BID], book[j, ASK], book[j, BSZ], book[j, ASZ], quoting, step,
                  quote, state, p, scratch, okind, offset, value, r, window, cursor, book, pos,
                  cash, seen, pending, working, orders, ex, ex_fee, cnt)  # fmt: skip
    return ts.shape[0]
