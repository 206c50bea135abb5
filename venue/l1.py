"""A venue that fills against the recorded top of book (L1), in one compiled loop with the
strategy, so a decision, its order, the fill and the ack each land when the latency legs say.

Per quote, in time order (`ts_recv`: when we saw it):
1. orders that reached the venue before this quote match the book as it was then: a buy takes
   the ask, a sell the bid, at most the displayed size less what earlier orders took from it
   (the rest is not filled: immediate or cancel); each order leaves one execution row;
2. acks due by now move the position the strategy sees;
3. the quote becomes the instrument's book;
4. the strategy steps on it; a target away from what it has (filled and in flight) sends one
   market order for the difference, leaving at now + decision and reaching the venue at
   + entry. Orders in flight are bounded (`MAX_IN_FLIGHT`): past it an order is refused and
   counted, as a venue's order-rate limit would.

Equity (cash plus positions at the mid, in money) is sampled once per `bar_ns` of data time.
The loop runs chunk by chunk over persistent state, so memory stays flat with length.
"""

from __future__ import annotations

import numba as nb
import numpy as np

MAX_IN_FLIGHT = 4096  # orders between decision and ack, all instruments

EXECUTION_DTYPE = np.dtype(
    [
        ("ts_decision", "<i8"),  # the quote's ts_recv + the decision leg: the order leaves
        ("ts_venue", "<i8"),  # + the entry leg: matched against the book as of then
        ("ts_ack", "<i8"),  # + the ack leg: the strategy's position moves
        ("instrument_id", "<u4"),
        ("qty_ordered", "<i8"),  # signed lots: + buy, - sell
        ("qty", "<i8"),  # signed lots filled (0: nothing at the touch)
        ("px", "<i8"),  # ticks; 0 when nothing filled
        ("fee", "<f8"),  # money
    ]
)

# Slots of the int64 counters vector.
O_HEAD, O_TAIL, A_HEAD, A_TAIL, ORDERS, REFUSED, NO_BOOK, NEXT_BAR, N_EXEC, N_BARS = range(10)
N_COUNTERS = 10
# Columns of the per-instrument int64 book: bid, ask, bid size, ask size, has a quote.
BID, ASK, BSZ, ASZ, HAS = range(5)


class VenueState:
    """Everything the loop keeps between chunks: books, positions, cash, orders in flight."""

    def __init__(self, n_instruments: int, bar_ns: int) -> None:
        self.book = np.zeros((n_instruments, 5), np.int64)
        self.pos = np.zeros(n_instruments, np.int64)  # filled, as the venue knows it
        self.seen = np.zeros(n_instruments, np.int64)  # acked, as the strategy knows it
        self.pending = np.zeros(n_instruments, np.int64)  # sent, not yet acked
        self.cash = np.zeros(n_instruments, np.float64)  # money, fees taken
        self.fees = np.zeros(n_instruments, np.float64)
        self.orders = np.zeros((MAX_IN_FLIGHT, 4), np.int64)  # t_decision, inst, qty, row
        self.acks = np.zeros((MAX_IN_FLIGHT, 2), np.int64)  # ts_ack, execution row
        self.cnt = np.zeros(N_COUNTERS, np.int64)
        self.cnt[NEXT_BAR] = np.iinfo(np.int64).min
        self.bar_ns = bar_ns


@nb.njit(cache=True)
def _equity(book, pos, cash, value) -> float:
    eq = 0.0
    for j in range(pos.shape[0]):
        eq += cash[j]
        if pos[j] != 0:
            eq += pos[j] * 0.5 * (book[j, BID] + book[j, ASK]) * value[j]
    return eq


@nb.njit(cache=True)
def _match(k, t_venue, book, pos, cash, fees, value, fee_rate, ex, ex_fee, ex_inst_id) -> None:
    """Fill execution row `k` (instrument, signed qty already in it) at the book of now."""
    j = ex_inst_id[k]
    q = ex[k, 4]
    if q > 0:
        px, avail = book[j, ASK], book[j, ASZ]
    else:
        px, avail = book[j, BID], book[j, BSZ]
    f = min(abs(q), avail) if book[j, HAS] else 0
    if f <= 0:
        ex[k, 1] = t_venue
        return
    # The liquidity taken is gone until the next quote shows the level again: a second
    # order before then finds only what is left, never the same lots twice.
    book[j, ASZ if q > 0 else BSZ] -= f
    f = f if q > 0 else -f
    notional = abs(f) * px * value[j]
    fee = notional * fee_rate
    cash[j] -= f * px * value[j] + fee
    fees[j] += fee
    pos[j] += f
    ex[k, 1] = t_venue
    ex[k, 5] = f
    ex[k, 6] = px
    ex_fee[k] = fee


@nb.njit(cache=True)
def run_chunk(ts, inst, bid, ask, bsz, asz, step, state, p, legs, fee_rate, value, bar_ns,
              book, pos, seen, pending, cash, fees, orders, acks, cnt, ex, ex_fee, ex_inst_id,
              bars_ts, bars_eq):  # fmt: skip
    """One chunk of quotes (inst: dense instrument index). Executions go to `ex` rows
    (t_decision, t_venue, t_ack, -, qty_ordered, qty, px), `ex_fee` and `ex_inst_id` from
    cnt[N_EXEC]; equity bars to bars_ts/bars_eq from cnt[N_BARS]. Each holds len(ts) rows
    more than the chunk starts with."""
    dec_ns, entry_ns, ack_ns = legs[0], legs[1], legs[2]
    cap = orders.shape[0]
    for i in range(ts.shape[0]):
        t = ts[i]
        # 1. orders at the venue before this quote see the book before it
        while cnt[O_HEAD] < cnt[O_TAIL]:
            o = cnt[O_HEAD] % cap
            t_venue = orders[o, 0] + entry_ns
            if t_venue >= t:
                break
            k = orders[o, 3]
            _match(k, t_venue, book, pos, cash, fees, value, fee_rate, ex, ex_fee, ex_inst_id)
            a = cnt[A_TAIL] % cap
            acks[a, 0], acks[a, 1] = t_venue + ack_ns, k
            cnt[A_TAIL] += 1
            cnt[O_HEAD] += 1
        # 2. acks due by now
        while cnt[A_HEAD] < cnt[A_TAIL]:
            a = cnt[A_HEAD] % cap
            if acks[a, 0] > t:
                break
            k = acks[a, 1]
            j = ex_inst_id[k]
            seen[j] += ex[k, 5]
            pending[j] -= ex[k, 4]
            ex[k, 2] = acks[a, 0]
            cnt[A_HEAD] += 1
        if t >= cnt[NEXT_BAR]:
            b = cnt[N_BARS]
            bars_ts[b], bars_eq[b] = t, _equity(book, pos, cash, value)
            cnt[N_BARS] += 1
            cnt[NEXT_BAR] = (t // bar_ns + 1) * bar_ns
        # 3. the quote is the book
        j = inst[i]
        book[j, BID], book[j, ASK], book[j, BSZ], book[j, ASZ] = bid[i], ask[i], bsz[i], asz[i]
        book[j, HAS] = 1
        # 4. the strategy
        have = seen[j] + pending[j]
        want = step(state[j], p, bid[i], ask[i], have) - have
        if want != 0:
            if cnt[O_TAIL] - cnt[A_HEAD] >= cap:  # in flight until acked
                cnt[REFUSED] += 1
                continue
            k = cnt[N_EXEC]
            ex[k, 0], ex[k, 4], ex_inst_id[k] = t + dec_ns, want, j
            ex[k, 1] = ex[k, 2] = ex[k, 5] = ex[k, 6] = 0
            ex_fee[k] = 0.0
            cnt[N_EXEC] += 1
            o = cnt[O_TAIL] % cap
            orders[o, 0], orders[o, 1], orders[o, 2], orders[o, 3] = t + dec_ns, j, want, k
            cnt[O_TAIL] += 1
            pending[j] += want
            cnt[ORDERS] += 1


@nb.njit(cache=True)
def equity(book, pos, cash, value) -> float:
    """Cash plus positions at the mid, in money."""
    return _equity(book, pos, cash, value)
