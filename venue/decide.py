"""The strategy's step and the acks before it as functions for venue/l2.py (it steps once per
atomic batch of deltas, or on a timer). venue/l1.py writes the same two steps out in its loop
body: a call per quote with its ~30 arrays costs their reference counts, and inlined (numba's
inline="always") these ran 3x slower there (measured). l2.py inlines `decide` and l1's
`_requote`, which cost ~450 ns a step in calls with ~20 arrays each (measured, 2M synthetic
rows, market_maker: 1.4x less CPU time when its steps keep both quotes, 1.2x when every
update requotes)."""

from __future__ import annotations

import numba as nb

from redline.venue.l1 import (
    _IN_FLIGHT,
    _LIMIT,
    _MARKET,
    _POST,
    A_HEAD,
    A_TAIL,
    C_ACK,
    C_ACKED,
    C_CANCEL,
    C_INST,
    C_QORD,
    C_STATUS,
    O_HEAD,
    O_TAIL,
    _new_row,
    cancel_working,
    send,
)
from redline.venue.l1 import _requote as _requote_call

# l1's quoting step, the same function compiled to inline (l1.py's loop calls its own)
_requote = nb.njit(inline="always")(_requote_call.py_func)


@nb.njit(cache=True)
def take_acks(t, seen, pending, working, acks, ex, cnt) -> None:
    """Acks due by `t` move what the strategy has (`seen`) and what it has in flight."""
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


@nb.njit(cache=True, inline="always")
def decide(t, j, bid, ask, bsz, asz, quoting, step, quote, state, p, legs, okind, offset, value,
           r, window, cursor, book, pos, cash, seen, pending, working, orders, ex, ex_fee,
           cnt) -> None:  # fmt: skip
    """The strategy steps on instrument `j`'s touch at `t`; its orders go through pre-trade
    risk and leave after legs[0] (decision), reaching the venue after legs[1] (entry)."""
    if quoting:
        quote(state[j], p, bid, ask, bsz, asz, seen[j])
        _requote(
            t,
            j,
            state[j],
            0.5 * (bid + ask),
            legs,
            r,
            window,
            cursor,
            value,
            book,
            pos,
            cash,
            seen,
            pending,
            working,
            orders,
            ex,
            ex_fee,
            cnt,
        )
        return
    have = seen[j] + pending[j]
    target = step(state[j], p, bid, ask, have)
    want = target - have
    if want == 0:
        return
    if cnt[O_TAIL] - cnt[O_HEAD] + 2 > orders.shape[0]:  # no room for a cancel and an order
        _new_row(t + legs[0], j, want, okind, _IN_FLIGHT, ex, ex_fee, cnt)
        return
    if working[j, 0] >= 0:  # cancel + new: ours resting here goes first
        cancel_working(t + legs[0] + legs[1], j, 0, working, pending, orders, ex, cnt)
        want = target - (seen[j] + pending[j])
        if want == 0:
            return
    buy = want > 0
    lim = 0 if okind == _MARKET else (bid + offset if buy else ask - offset)
    px = (ask if buy else bid) if okind == _MARKET else lim
    k = send(
        t,
        j,
        want,
        okind,
        lim,
        px,
        0.5 * (bid + ask),
        legs,
        r,
        window,
        cursor,
        value,
        book,
        pos,
        cash,
        seen,
        pending,
        orders,
        ex,
        ex_fee,
        cnt,
    )
    if ex[k, C_STATUS] == 0 and okind in (_LIMIT, _POST):
        working[j, 0] = k
