"""A strategy against the L2 venue (venue/l2.py) over recorded book deltas and trades.

    bt = L2Backtest("market_maker", params, Latency(), instruments=[1], queue="power",
                    power=2.0)
    for rtype, records in replay(paths):   # BOOK_DELTA and TRADE batches in ts_recv order
        bt.feed(records)
    result = bt.finish()

The same API and results as backtest.Backtest; QUOTE records are not fed (the L2 book is the
touch), other record types are refused by dtype.
"""

from __future__ import annotations

import numpy as np

from redline.feeds.events import BOOK_DELTA_DTYPE, TRADE_DTYPE, BookAction
from redline.venue import l1, l2
from redline.venue.backtest import Backtest, Result
from redline.venue.risk import Risk

PENDING_ROWS = 1 << 16  # rows taken before they run


class L2Backtest(Backtest):
    def __init__(self, *args, queue: str = "risk_averse", power: float = 2.0,
                 window_ticks: int = l2.WINDOW_TICKS, **kwargs) -> None:  # fmt: skip
        """Backtest's arguments, plus the queue model (l2.MODELS; `power`: its n) and the
        levels' window per side."""
        self._queue = (queue, power, window_ticks)
        super().__init__(*args, **kwargs)
        self._qa = np.zeros(0, np.float64)  # queue ahead of each order row (lots)
        self._qt = np.zeros(0, np.float64)  # traded at its level since the level last moved
        self._pending: list[np.ndarray] = []  # batches taken, not yet run
        self._pending_rows = 0

    def _new_venue(self, limits: Risk) -> l2.L2State:
        return l2.L2State(len(self.ids), self.bar_ns, limits, *self._queue)

    def feed(self, records: np.ndarray) -> None:
        """Take the next BOOK_DELTA or TRADE records (ts_recv order, after the previous ones).
        They run in merged runs of PENDING_ROWS or more: a real capture alternates deltas and
        trades in batches of a few rows, and a compiled call per batch would cost more than
        the rows (measured: 8,834 batches for 444k rows of ETHUSDT, 10x slower)."""
        if records.dtype not in (TRADE_DTYPE, BOOK_DELTA_DTYPE):
            raise TypeError(
                f"backtest: the L2 venue wants BOOK_DELTA or TRADE records, got {records.dtype}"
            )
        if not len(records):
            return
        self._pending.append(records)  # a batch the reader gave stays valid (reader.py)
        self._pending_rows += len(records)
        if self._pending_rows >= PENDING_ROWS:
            self._run_pending()

    def _merged(self) -> tuple[np.ndarray, ...]:
        """The pending batches as one run of columns: ts, instrument index, flags, side (a
        trade's aggressor), action (TRADE for a trade), px, sz."""
        n = self._pending_rows
        cols = [np.empty(n, t) for t in (np.int64, np.int64, np.uint8, np.int8, np.uint8,
                                         np.int64, np.int64)]  # fmt: skip
        ts, inst, flags, side, action, px, sz = cols
        at = 0
        for r in self._pending:
            s = slice(at, at + len(r))
            ts[s], inst[s], flags[s], px[s], sz[s] = (
                r["ts_recv"], r["instrument_id"], r["flags"], r["px"], r["sz"],
            )  # fmt: skip
            if r.dtype == TRADE_DTYPE:
                side[s], action[s] = r["aggressor"], int(BookAction.TRADE)
            else:
                side[s], action[s] = r["side"], r["action"]
            at += len(r)
        self._pending, self._pending_rows = [], 0
        cols[1] = self._dense(inst)
        return tuple(cols)

    def _run_pending(self) -> None:
        if not self._pending:
            return
        ts, idx, flags, side, action, px, sz = self._merged()
        n = len(ts)
        v, cnt = self.venue, self.venue.cnt
        bars_ts, bars_eq = self._start_chunk(n)
        kind, offset = self.orders.code(), self.orders.offset
        done = 0
        while done < n:  # more than once only when the acks in flight outgrow their ring
            if done:
                v.grow_acks()
            s = slice(done, n)
            done += l2.run_chunk(ts[s], idx[s], flags[s], side[s], action[s], px[s], sz[s],
                                 self._quoting, self._step, self._quote, self._state, self._p,
                                 self.legs.arrays(), self._scratch, self._fees, kind, offset,
                                 self._value, self.bar_ns, v.risk, v.window, v.cursor, v.levels,
                                 v.lstate, v.queue, v.book, v.pos, v.seen, v.pending, v.working,
                                 v.rest_n, v.cash, v.fees, v.orders, v.acks, v.rest, cnt, v.cnt2,
                                 self._ex_buf, self._fee_buf, self._qa, self._qt, bars_ts,
                                 bars_eq)  # fmt: skip
        self._end_chunk(n, bars_ts, bars_eq)

    def _grow(self, rows: int) -> None:
        super()._grow(rows)
        k, m = len(self._ex_buf), len(self._qa)
        if k > m:
            self._qa = np.concatenate([self._qa, np.zeros(k - m)])
            self._qt = np.concatenate([self._qt, np.zeros(k - m)])

    def finish(self) -> Result:
        """Backtest.finish, plus what the L2 venue counted."""
        self._run_pending()
        result = super().finish()
        v = self.venue
        result.figures |= {
            "venue": "l2",
            "queue_model": self._queue[0],
            "queue_power": self._queue[1] if self._queue[0] == "power" else None,
            "levels_outside_window": int(v.cnt2[l2.OUTSIDE]),
            "arrivals_held_for_gap": int(v.cnt2[l2.HELD]),
            "queue_ahead_at_end": [float(self._qa[k]) for k in v.rest[: v.cnt[l1.N_REST]]],
        }
        return result
