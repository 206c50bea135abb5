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
# A trade record read as a BOOK_DELTA record: the fields the venue reads at the same offsets,
# the aggressor where a delta's side is, so a merged run is one memcpy.
_AS_DELTA = {"ts_recv": "ts_recv", "instrument_id": "instrument_id", "flags": "flags",
             "px": "px", "sz": "sz", "aggressor": "side"}  # fmt: skip
_SAME_LAYOUT = TRADE_DTYPE.itemsize == BOOK_DELTA_DTYPE.itemsize and all(
    TRADE_DTYPE.fields[a][:2] == BOOK_DELTA_DTYPE.fields[b][:2] for a, b in _AS_DELTA.items()
)
assert _SAME_LAYOUT, "events.py moved a field: merge TRADE records column by column again"


class L2Backtest(Backtest):
    VENUE = "l2"  # which compiled loop (venue/loops.py)

    def __init__(self, *args, queue: str = "risk_averse", power: float = 2.0,
                 window_ticks: int = l2.WINDOW_TICKS, step_ns: int = 0,
                 **kwargs) -> None:  # fmt: skip
        """Backtest's arguments, plus the queue model (l2.MODELS; `power`: its n), the
        levels' window per side, and the strategy's timer: with `step_ns` > 0 it steps on an
        instrument at most once per `step_ns` of data time (as hftbacktest's market makers
        wake every 100 ms), not at the end of every batch of deltas."""
        if not (isinstance(step_ns, int) and step_ns >= 0):
            raise ValueError(f"step_ns={step_ns!r}: give an int >= 0 (0: step on every book)")
        self._queue = (queue, power, window_ticks)
        self._step_ns = step_ns
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
        if not records.flags.c_contiguous:  # _merged joins their bytes
            records = np.ascontiguousarray(records)
        self._pending.append(records)  # a batch the reader gave stays valid (reader.py)
        self._pending_rows += len(records)
        if self._pending_rows >= PENDING_ROWS:
            self._run_pending()

    def _merged(self) -> np.ndarray:
        """The pending batches as one run of BOOK_DELTA records, a trade as action TRADE with
        its aggressor as `side` (same offsets: _SAME_LAYOUT). One batch of deltas is used as it
        is: copying seven columns out cost more than the compiled loop over them (measured)."""
        if len(self._pending) == 1 and self._pending[0].dtype == BOOK_DELTA_DTYPE:
            run = self._pending[0]
        else:
            # their bytes joined: np.concatenate promotes the records' dtypes batch by batch
            # (0.37 s for the 8,834 batches of 444k rows of ETHUSDT; the join, 3.5 ms)
            run = np.frombuffer(bytearray().join(self._pending), BOOK_DELTA_DTYPE)
            trade = [r.dtype == TRADE_DTYPE for r in self._pending]
            run["action"][np.repeat(trade, [len(r) for r in self._pending])] = BookAction.TRADE
        self._pending, self._pending_rows = [], 0
        iid = run["instrument_id"]
        if len(self.ids) > 1 or (iid != self.ids[0]).any():
            self._dense(iid)  # raises, naming an instrument not in the run
        return run

    def _run_pending(self) -> None:
        if not self._pending:
            return
        run = self._merged()
        ts, iid, flags, side, action, px, sz = (
            run[f] for f in ("ts_recv", "instrument_id", "flags", "side", "action", "px", "sz")
        )
        n = len(ts)
        v, cnt = self.venue, self.venue.cnt
        bars_ts, bars_eq = self._start_chunk(n)
        kind, offset = self.orders.code(), self.orders.offset
        done = 0
        while done < n:  # more than once only when the acks in flight outgrow their ring
            if done:
                v.grow_acks()
            s = slice(done, n)
            done += self._loop(
                (ts[s], iid[s], self.ids, flags[s], side[s], action[s], px[s], sz[s],
                 self._step_ns, self._state, self._p, self.legs.arrays(), self._scratch,
                 self._fees, kind, offset, self._value, self.bar_ns, v.risk, v.window, v.cursor,
                 v.levels, v.lstate, v.queue, v.book, v.pos, v.seen, v.pending, v.working,
                 v.rest_n, v.cash, v.fees, v.orders, v.acks, v.rest, cnt, v.cnt2, self._ex_buf,
                 self._fee_buf, self._qa, self._qt, bars_ts, bars_eq)
            )  # fmt: skip
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
