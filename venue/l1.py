"""A venue that fills against the recorded top of book (L1), in one compiled loop with the
strategy and pre-trade risk, so a decision, its order, each fill and each ack land when the
latency legs say.

Per quote, in time order (`ts_recv`: when we saw it):
1. orders and cancels that reached the venue before this quote meet the book as it was then
   (after a sequence gap, Flag.GAP_BEFORE on this quote, the book before it is unknown: they
   meet this quote instead, the first price known after the gap);
2. the quote becomes the instrument's book; our orders resting there fill against it;
3. acks due by now move the position the strategy sees;
4. the strategy steps on it. A target strategy: a target away from what it has (filled and in
   flight) cancels our order still resting there, then sends one order for the difference. A
   quoting strategy: a bid or ask it wants at another price than ours resting (or no longer
   wants) is cancelled, and a side wanted and not resting gets a post-only order. An order
   leaves at now + decision and reaches the venue at + entry, if pre-trade risk (risk.py) lets
   it; a cancel goes the same way, unchecked. Legs vary with time or by draw (latency.py).

The L1 fill rules (prices in ticks, sizes in lots):
- a market order takes the touch on arrival (a buy the ask), at most its displayed size; the
  rest is cancelled (EXPIRED);
- a limit buy at px that crosses on arrival (ask <= px) takes the ask the same way, at the ask;
  IOC then cancels the rest, GTC rests it at px; post-only is refused if it would cross;
- a resting buy at px fills at a later quote whose ask <= px, at px, at most the ask's displayed
  size; resting orders fill in the order they arrived;
- what one order takes is gone until the next quote shows the level again: the same
  liquidity never fills two orders;
- a cancel that arrives after the order filled or expired does nothing and is counted.
Taker fees on what crosses on arrival, maker fees on resting fills.

Equity (cash plus positions at the mid, in money) is sampled once per `bar_ns` of data time.
The loop runs chunk by chunk over persistent state, so memory stays flat with length.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from redline.feeds.events import Flag
from redline.venue import risk
from redline.venue.latency import at, drawn
from redline.venue.orders import Kind, Status
from redline.venue.portfolio import mark, notional, paid

MAX_IN_FLIGHT = 4096  # orders and cancels between decision and venue, all instruments
MAX_RESTING = 1024  # our resting orders, all instruments (a venue's open-order limit)
ACK_RING = 4096  # acks on their way to start with; the loop stops and Python doubles it
GAP = int(Flag.GAP_BEFORE)

# Slots of the int64 counters vector.
(O_HEAD, O_TAIL, A_HEAD, A_TAIL, ORDERS, NEXT_BAR, N_EXEC, N_BARS, N_REST, CANCELS,
 LATE_CANCELS, DECISIONS) = range(12)  # fmt: skip
N_COUNTERS = 12
# Columns of the per-instrument int64 book: bid, ask, bid size, ask size, has a quote.
BID, ASK, BSZ, ASZ, HAS = range(5)
# Columns of the int64 order rows (one per order; orders.EXECUTION_DTYPE at the end).
(C_DEC, C_VENUE, C_ACK, C_INST, C_QORD, C_QTY, C_NOTIONAL, C_KIND, C_LIMIT, C_STATUS, C_ACKED,
 C_CANCEL) = range(12)  # fmt: skip
N_COLUMNS = 12
NEW, CANCEL = 0, 1  # what an entry of the order ring carries to the venue

_MARKET, _LIMIT, _IOC, _POST = int(Kind.MARKET), int(Kind.LIMIT), int(Kind.IOC), int(Kind.POST_ONLY)
_FILLED, _EXPIRED, _RESTING = int(Status.FILLED), int(Status.EXPIRED), int(Status.RESTING)
_CANCELLED, _CROSSED = int(Status.CANCELLED), int(Status.POST_ONLY_CROSSED)
_FULL, _IN_FLIGHT = int(Status.OPEN_ORDERS_FULL), int(Status.IN_FLIGHT)


class VenueState:
    """Everything the loop keeps between chunks: books, positions, cash, orders and acks in
    flight, our resting orders, the risk state."""

    def __init__(self, n_instruments: int, bar_ns: int, limits: risk.Risk) -> None:
        n = n_instruments
        self.book = np.zeros((n, 5), np.int64)
        self.pos = np.zeros(n, np.int64)  # filled, as the venue knows it
        self.seen = np.zeros(n, np.int64)  # acked, as the strategy knows it
        self.pending = np.zeros(n, np.int64)  # sent, not yet acked, not being cancelled
        # Rows of our orders resting there, as the strategy knows: one slot for a target
        # strategy's order, a bid and an ask slot for a quoting one.
        self.working = np.full((n, 2), -1, np.int64)
        self.rest_n = np.zeros(n, np.int64)  # our orders resting there, as the venue knows
        self.cash = np.zeros(n, np.float64)  # money, fees taken
        self.fees = np.zeros(n, np.float64)
        self.orders = np.zeros((MAX_IN_FLIGHT, 3), np.int64)  # t_venue, NEW/CANCEL, row
        self.acks = np.zeros((ACK_RING, 4), np.int64)  # t_ack, row, lots filled, done
        self.rest = np.zeros(MAX_RESTING, np.int64)  # rows, in arrival order
        self.risk = limits.vector()
        self.window, self.cursor = limits.new_window(n)
        self.cnt = np.zeros(N_COUNTERS, np.int64)
        self.cnt[NEXT_BAR] = np.iinfo(np.int64).min
        self.bar_ns = bar_ns

    def grow_acks(self) -> None:
        """Double the ack ring, its entries kept in order (the loop asked for room)."""
        head, tail = int(self.cnt[A_HEAD]), int(self.cnt[A_TAIL])
        cap = len(self.acks)
        bigger = np.zeros((2 * cap, 4), np.int64)
        at = np.arange(head, tail)
        bigger[at % (2 * cap)] = self.acks[at % cap]
        self.acks = bigger


@nb.njit(cache=True)
def equity(book, pos, cash, value) -> float:
    """Cash plus positions at the mid, in money."""
    eq = 0.0
    for j in range(pos.shape[0]):
        eq += cash[j]
        if pos[j] != 0:
            eq += mark(pos[j], 0.5 * (book[j, BID] + book[j, ASK]), value[j])
    return eq


@nb.njit(cache=True, inline="always")
def _ack(t_ack, k, dq, done, acks, cnt) -> None:
    a = cnt[A_TAIL] % acks.shape[0]
    acks[a, 0], acks[a, 1], acks[a, 2], acks[a, 3] = t_ack, k, dq, done
    cnt[A_TAIL] += 1


@nb.njit(cache=True, inline="always")
def _fill(k, f, px, rate, pos, cash, fees, value, ex, ex_fee) -> None:
    """Signed `f` lots of order row `k` at `px`: position, cash, fee and the row move."""
    j = ex[k, C_INST]
    fee = notional(f, px, value[j]) * rate
    cash[j] -= paid(f, px, value[j]) + fee
    fees[j] += fee
    pos[j] += f
    ex[k, C_QTY] += f
    ex[k, C_NOTIONAL] += abs(f) * px
    ex_fee[k] += fee


@nb.njit(cache=True)
def _arrive(k, t_venue, ack_ns, fee_rates, book, pos, cash, fees, value, ex, ex_fee, acks,
            rest, rest_n, cnt) -> None:  # fmt: skip
    """Order row `k` reaches the venue: what crosses the book takes it, the rest rests or
    goes, as its kind says."""
    j, q, kind, lim = ex[k, C_INST], ex[k, C_QORD], ex[k, C_KIND], ex[k, C_LIMIT]
    ex[k, C_VENUE] = t_venue
    buy = q > 0
    touch = book[j, ASK] if buy else book[j, BID]
    crosses = book[j, HAS] == 1 and (kind == _MARKET or (lim >= touch if buy else lim <= touch))
    if kind == _POST and crosses:
        ex[k, C_STATUS] = _CROSSED
        _ack(t_venue + ack_ns, k, 0, 1, acks, cnt)
        return
    f = 0
    if crosses:
        side = ASZ if buy else BSZ
        f = min(abs(q), book[j, side])
        if f > 0:
            book[j, side] -= f
            _fill(k, f if buy else -f, touch, fee_rates[0], pos, cash, fees, value, ex, ex_fee)
    dq = f if buy else -f
    if f == abs(q):
        ex[k, C_STATUS] = _FILLED
    elif kind in (_MARKET, _IOC):
        ex[k, C_STATUS] = _EXPIRED
    elif cnt[N_REST] >= rest.shape[0]:
        ex[k, C_STATUS] = _FULL
    else:
        ex[k, C_STATUS] = _RESTING
        rest[cnt[N_REST]] = k
        cnt[N_REST] += 1
        rest_n[j] += 1
        _ack(t_venue + ack_ns, k, dq, 0, acks, cnt)
        return
    _ack(t_venue + ack_ns, k, dq, 1, acks, cnt)


@nb.njit(cache=True)
def _cancel(k, t_venue, ack_ns, ex, acks, rest, rest_n, cnt) -> None:
    """Our cancel of row `k` reaches the venue: it takes the order off if it still rests."""
    if ex[k, C_STATUS] != _RESTING:
        cnt[LATE_CANCELS] += 1  # filled or gone before the cancel got there
        return
    m = 0
    for s in range(cnt[N_REST]):  # keep the others in arrival order
        if rest[s] != k:
            rest[m] = rest[s]
            m += 1
    cnt[N_REST] = m
    rest_n[ex[k, C_INST]] -= 1
    ex[k, C_STATUS] = _CANCELLED
    _ack(t_venue + ack_ns, k, 0, 1, acks, cnt)


@nb.njit(cache=True)
def _rest_fills(j, t, ack_ns, fee_rates, book, pos, cash, fees, value, ex, ex_fee, acks, rest,
                rest_n, cnt) -> None:  # fmt: skip
    """Our orders resting on instrument `j` against its new quote, at their own price."""
    m = 0
    for s in range(cnt[N_REST]):
        k = rest[s]
        if ex[k, C_INST] == j:
            q, lim = ex[k, C_QORD], ex[k, C_LIMIT]
            buy = q > 0
            side = ASZ if buy else BSZ
            reached = book[j, ASK] <= lim if buy else book[j, BID] >= lim
            f = min(abs(q) - abs(ex[k, C_QTY]), book[j, side]) if reached else 0
            if f > 0:
                book[j, side] -= f
                _fill(k, f if buy else -f, lim, fee_rates[1], pos, cash, fees, value, ex, ex_fee)
                done = ex[k, C_QTY] == q
                _ack(t + ack_ns, k, f if buy else -f, 1 if done else 0, acks, cnt)
                if done:
                    ex[k, C_STATUS] = _FILLED
                    rest_n[j] -= 1
                    continue
        rest[m] = k
        m += 1
    cnt[N_REST] = m


@nb.njit(cache=True, inline="always")
def room(cnt, acks, ex) -> bool:
    """Room for the next event's acks (one per order arriving or resting) and rows (two)."""
    waiting = (cnt[A_TAIL] - cnt[A_HEAD]) + (cnt[O_TAIL] - cnt[O_HEAD]) + cnt[N_REST]
    return waiting < acks.shape[0] and cnt[N_EXEC] + 2 <= ex.shape[0]


@nb.njit(cache=True, inline="always")
def cancel_working(t_venue, j, side, working, pending, orders, ex, cnt) -> None:
    """Send the cancel of our order resting on instrument `j`'s `side` slot: its rest leaves
    what the strategy has at once (a fill before the cancel lands still counts when acked)."""
    w = working[j, side]
    o = cnt[O_TAIL] % orders.shape[0]
    orders[o, 0], orders[o, 1], orders[o, 2] = t_venue, CANCEL, w
    cnt[O_TAIL] += 1
    cnt[CANCELS] += 1
    ex[w, C_CANCEL] = 1
    pending[j] -= ex[w, C_QORD] - ex[w, C_ACKED]
    working[j, side] = -1


@nb.njit(cache=True, inline="always")
def send(t, j, q, kind, lim, px, mid, legs, r, window, cursor, value, book, pos, cash, seen,
         pending, orders, ex, ex_fee, cnt) -> int:  # fmt: skip
    """Pre-trade risk on an order of `q` lots decided at `t`, then its row, sent if it passed:
    the row's index (its status says which)."""
    if cnt[O_TAIL] - cnt[O_HEAD] >= orders.shape[0]:
        why = _IN_FLIGHT
    else:
        eq = equity(book, pos, cash, value) if r[risk.R_KILL] > 0 else 0.0
        why = risk.check(r, j, seen[j] + pending[j], q, px, kind != _MARKET, mid, value[j], eq,
                         t, window, cursor)  # fmt: skip
    k = _new_row(t + legs[0], j, q, kind, why, ex, ex_fee, cnt)
    ex[k, C_LIMIT] = lim
    if why == 0:
        o = cnt[O_TAIL] % orders.shape[0]
        orders[o, 0], orders[o, 1], orders[o, 2] = t + legs[0] + legs[1], NEW, k
        cnt[O_TAIL] += 1
        pending[j] += q
        cnt[ORDERS] += 1
    return k


@nb.njit
def run_chunk(quoting, step, quote, args) -> int:
    """One chunk of quotes (inst: dense instrument index) for a target-position strategy
    (`step`) or, when `quoting`, a quoting one (`quote`; strategies/target.py); the other is a
    stand-in never called; venue/loops.py caches one entry per strategy. `legs`: latency.Legs.arrays(); `scratch`: 3 int64 for the legs of
    the decision stepped. Rows go to `ex` (N_COLUMNS) and `ex_fee` from cnt[N_EXEC], bars to
    bars_ts/bars_eq from cnt[N_BARS] (room for len(ts) + 1). Returns how many quotes it ran:
    fewer when the ack ring or `ex` needs room first (see `room`)."""
    (ts, inst, flags, bid, ask, bsz, asz, state, p, legs, scratch, fee_rates, okind, offset,
     value, bar_ns, r, window, cursor, book, pos, seen, pending, working, rest_n, cash,
     fees, orders, acks, rest, cnt, ex, ex_fee, bars_ts, bars_eq) = args  # fmt: skip
    # One loop body, written out (steps 3 and 4 are venue/decide.py's): a call per quote with
    # these ~30 arrays costs their reference counts, 4x the loop (measured: 22 -> 5 M quotes/s).
    for i in range(ts.shape[0]):
        if not room(cnt, acks, ex):
            return i
        t, j = ts[i], inst[i]
        gap = flags[i] & GAP != 0
        if gap:  # the book before the gap is unknown: arrivals meet the first one after it
            book[j, BID], book[j, ASK], book[j, BSZ], book[j, ASZ] = bid[i], ask[i], bsz[i], asz[i]
            book[j, HAS] = 1
        # 1. orders and cancels at the venue before this quote see the book before it
        while cnt[O_HEAD] < cnt[O_TAIL]:
            o = cnt[O_HEAD] % orders.shape[0]
            t_venue = orders[o, 0]
            if t_venue >= t:
                break
            if orders[o, 1] == NEW:
                _arrive(orders[o, 2], t_venue, at(legs[3], legs[4], t_venue), fee_rates, book,
                        pos, cash, fees, value, ex, ex_fee, acks, rest, rest_n, cnt)  # fmt: skip
            else:
                _cancel(orders[o, 2], t_venue, at(legs[3], legs[4], t_venue), ex, acks, rest,
                        rest_n, cnt)  # fmt: skip
            cnt[O_HEAD] += 1
        if t >= cnt[NEXT_BAR]:
            b = cnt[N_BARS]
            bars_ts[b], bars_eq[b] = t, equity(book, pos, cash, value)
            cnt[N_BARS] += 1
            cnt[NEXT_BAR] = (t // bar_ns + 1) * bar_ns
        # 2. the quote is the book; our resting orders meet it
        if not gap:
            book[j, BID], book[j, ASK], book[j, BSZ], book[j, ASZ] = bid[i], ask[i], bsz[i], asz[i]
            book[j, HAS] = 1
        if rest_n[j] > 0:
            _rest_fills(j, t, at(legs[3], legs[4], t), fee_rates, book, pos, cash, fees, value,
                        ex, ex_fee, acks, rest, rest_n, cnt)  # fmt: skip
        # 3. acks due by now
        while cnt[A_HEAD] < cnt[A_TAIL]:
            a = cnt[A_HEAD] % acks.shape[0]
            if acks[a, 0] > t:
                break
            k, dq = acks[a, 1], acks[a, 2]
            jk = ex[k, C_INST]
            seen[jk] += dq
            ex[k, C_ACKED] += dq
            if ex[k, C_CANCEL] == 0:  # a cancelled order's rest left `pending` when sent
                pending[jk] -= dq
                if acks[a, 3]:
                    pending[jk] -= ex[k, C_QORD] - ex[k, C_ACKED]
            if acks[a, 3]:
                for side in range(working.shape[1]):
                    if working[jk, side] == k:
                        working[jk, side] = -1
            ex[k, C_ACK] = acks[a, 0]
            cnt[A_HEAD] += 1
        cnt[DECISIONS] += 1  # 4. the strategy, then pre-trade risk
        scratch[0] = drawn(legs[0], cnt[DECISIONS])  # this decision's legs
        scratch[1] = at(legs[1], legs[2], t + scratch[0])
        if quoting:
            quote(state[j], p, bid[i], ask[i], bsz[i], asz[i], seen[j])
            _requote(t, j, state[j], 0.5 * (bid[i] + ask[i]), scratch, r, window, cursor, value,
                     book, pos, cash, seen, pending, working, orders, ex, ex_fee, cnt)  # fmt: skip
            continue
        have = seen[j] + pending[j]
        target = step(state[j], p, bid[i], ask[i], have)
        want = target - have
        if want == 0:
            continue
        if cnt[O_TAIL] - cnt[O_HEAD] + 2 > orders.shape[0]:  # no room for a cancel and an order
            _new_row(t + scratch[0], j, want, okind, _IN_FLIGHT, ex, ex_fee, cnt)
            continue
        if working[j, 0] >= 0:  # cancel + new: ours resting here goes first
            cancel_working(t + scratch[0] + scratch[1], j, 0, working, pending, orders, ex, cnt)
            want = target - (seen[j] + pending[j])
            if want == 0:
                continue
        buy = want > 0
        lim = 0 if okind == _MARKET else (bid[i] + offset if buy else ask[i] - offset)
        px = (ask[i] if buy else bid[i]) if okind == _MARKET else lim
        k = send(t, j, want, okind, lim, px, 0.5 * (bid[i] + ask[i]), scratch, r, window, cursor,
                 value, book, pos, cash, seen, pending, orders, ex, ex_fee, cnt)  # fmt: skip
        if ex[k, C_STATUS] == 0 and okind in (_LIMIT, _POST):
            working[j, 0] = k
    return ts.shape[0]


@nb.njit(cache=True)
def _requote(t, j, row, mid, legs, r, window, cursor, value, book, pos, cash, seen, pending,
             working, orders, ex, ex_fee, cnt) -> None:  # fmt: skip
    """A quoting strategy's wanted quotes (row[0:4]: bid px, bid lots, ask px, ask lots) against
    ours resting (working[j]: bid, ask): an order at another price, or on a side no longer
    wanted, is cancelled; a side wanted and not resting gets a new post-only order."""
    t_venue = t + legs[0] + legs[1]
    for side in range(2):
        px, qty = np.int64(row[2 * side]), np.int64(row[2 * side + 1])
        w = working[j, side]
        if w >= 0:
            if qty > 0 and ex[w, C_LIMIT] == px:
                continue  # resting where wanted: keep its place
            if cnt[O_TAIL] - cnt[O_HEAD] >= orders.shape[0]:
                continue  # no room for the cancel: try again on the next quote
            cancel_working(t_venue, j, side, working, pending, orders, ex, cnt)
        if qty > 0:
            q = qty if side == 0 else -qty
            k = send(t, j, q, _POST, px, px, mid, legs, r, window, cursor, value, book, pos,
                     cash, seen, pending, orders, ex, ex_fee, cnt)  # fmt: skip
            if ex[k, C_STATUS] == 0:
                working[j, side] = k


@nb.njit(cache=True, inline="always")
def _new_row(t_decision, j, q, kind, status, ex, ex_fee, cnt) -> int:
    """A new order row with `status` (0: sent, else the refusal's reason); its index."""
    k = cnt[N_EXEC]
    for c in range(N_COLUMNS):
        ex[k, c] = 0
    ex[k, C_DEC], ex[k, C_INST], ex[k, C_QORD], ex[k, C_KIND] = t_decision, j, q, kind
    ex[k, C_STATUS] = status
    ex_fee[k] = 0.0
    cnt[N_EXEC] += 1
    return k


@nb.njit(cache=True)
def no_step(row, p, bid_px, ask_px, position) -> int:
    """run_chunk's stand-in for the target step of a quoting strategy (never called)."""
    return position


@nb.njit(cache=True)
def no_quote(row, p, bid_px, ask_px, bid_sz, ask_sz, position) -> None:
    """run_chunk's stand-in for the quote step of a target strategy (never called)."""
