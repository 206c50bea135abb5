"""A strategy against the L2 venue (venue/l2.py) over recorded book deltas and trades.

    bt = L2Backtest("market_maker", params, Latency(), instruments=[1], queue="power",
                    power=2.0)
    for rtype, records in replay(paths):   # BOOK_DELTA and TRADE batches in ts_recv order
        bt.feed(records)
    result = bt.finish()

The same API and results as backtest.Backtest; QUOTE records are not fed (the L2 book is the
touch), other record types are refused by dtype.

L3 (order by order) deltas are told apart per instrument: its first delta with an order id
(a trade's aside) makes it L3 for good, and its records go through a feeds/books/l3_levels
L3Levels (level deltas that keep each order's priority, for the `exact` queue model; fills
dropped, counted under `l3`). An instrument that applied L2 level deltas before is refused, as
is `exact` on L2 data, when they run (PENDING_ROWS at a time, or at `finish`).
"""

from __future__ import annotations

import numpy as np

from redline.feeds.books.l3_levels import NO_PRIORITY, L3Levels
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
_LEVEL_ACTIONS = (BookAction.ADD, BookAction.UPDATE, BookAction.DELETE)
_NO_PRIORITIES = np.zeros(0, np.int64)  # L2 data: the loop reads no priority
_TRADE = int(BookAction.TRADE)


def _grown(a: np.ndarray, rows: int) -> np.ndarray:
    """`a` at the head of `rows` zeroed rows: np.zeros maps pages that stay untouched until
    the loop writes an order row there (a copy onto np.zeros(rows - len(a)) wrote them all:
    ~25 ms per 2M events for qa and qt, as much as a third of the loop's time)."""
    out = np.zeros(rows, a.dtype)
    out[: len(a)] = a
    return out


def _l3_rows(run: np.ndarray) -> np.ndarray:
    """The rows of `run` that are deltas with an order id."""
    return (run["order_id"] != 0) & (run["action"] != _TRADE)


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
        self._qj = np.zeros(0, np.int64)  # exact: the L3 priority it joined behind
        self._pending: list[np.ndarray] = []  # batches taken, not yet run
        self._pending_rows = 0
        self._l3: dict[int, L3Levels] = {}  # the L3 instruments, each with its converter

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

    def _from_l3(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A run with L3 deltas in it, or after them: the L3 instruments' rows as level deltas
        with priorities, the others' as they are (priority -1), all in the order they came."""
        iid = records["instrument_id"]
        for i in np.unique(iid[_l3_rows(records)]).tolist():
            if i not in self._l3:
                self._start_l3(i, records)
        mine = np.isin(iid, list(self._l3))
        if not mine.any():
            return records, _NO_PRIORITIES
        if mine.all() and (iid == iid[0]).all():  # one instrument: the common case
            return self._l3[int(iid[0])].convert(records)[:2]
        keys = [np.flatnonzero(~mine)]  # each output row's input row, to merge them back
        parts, prios = [records[keys[0]]], [np.full(len(keys[0]), NO_PRIORITY, np.int64)]
        for i in np.unique(iid[mine]).tolist():
            rows = np.flatnonzero(iid == i)
            out, prio, src = self._l3[i].convert(records[rows])
            parts.append(out)
            prios.append(prio)
            keys.append(rows[src])
        order = np.argsort(np.concatenate(keys), kind="stable")
        return np.concatenate(parts)[order], np.concatenate(prios)[order]

    def _start_l3(self, i: int, records: np.ndarray) -> None:
        """Instrument `i` shows order ids in `records`: L3 from here on, unless it applied L2
        level deltas before."""
        iid = records["instrument_id"]
        first = np.flatnonzero((iid == i) & _l3_rows(records))[0]
        before = records[:first][iid[:first] == i]
        applied = self.venue.lstate[np.searchsorted(self.ids, i), l2.L_L2]  # in the loop
        if applied or np.isin(before["action"], _LEVEL_ACTIONS).any():
            raise ValueError(
                f"backtest: instrument {i} mixes L2 and L3 deltas (level deltas without order "
                "ids, then orders with ids); give one kind per instrument"
            )
        self._l3[i] = L3Levels()

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
        """The pending batches through the loop. L3 is told apart there, on rows it reads
        anyway: the loop stops at an instrument's first L3 delta and the rest of the run goes
        through its L3Levels. (A test in Python per batch cost ~15% of the market maker's
        time on the Binance capture, a compiled pass over each run ~15% on the synthetic
        stream: measured.)"""
        if not self._pending:
            return
        run, prio = self._merged(), _NO_PRIORITIES
        if self._l3:
            run, prio = self._from_l3(run)
        while (done := self._run(run, prio)) < len(run):
            run, prio = self._from_l3(run[done:])
        if self._queue[0] == "exact" and self.venue.lstate[:, l2.L_L2].any():
            i = self.ids[self.venue.lstate[:, l2.L_L2].argmax()]
            raise ValueError(
                f"--queue exact: instrument {i} has L2 (price level) deltas, no order ids; "
                "exact needs L3 (order by order) data: use --queue risk_averse|power|log on L2 "
                "data"
            )

    def _run(self, run: np.ndarray, prio: np.ndarray) -> int:
        """The loop over `run` (L3 `prio`rities, or none); how many rows it ran: all, or those
        before the first delta with an order id of a run without priorities."""
        ts, iid, flags, side, action, px, sz, oid = (
            run[f] for f in ("ts_recv", "instrument_id", "flags", "side", "action", "px", "sz",
                             "order_id")
        )  # fmt: skip
        n = len(ts)
        v, cnt = self.venue, self.venue.cnt
        bars_ts, bars_eq = self._start_chunk(n)
        kind, offset = self.orders.code(), self.orders.offset
        done = 0
        while done < n:
            s = slice(done, n)
            done += self._loop(
                (ts[s], iid[s], self.ids, flags[s], side[s], action[s], px[s], sz[s], oid[s],
                 prio[s], self._step_ns, self._state, self._p,
                 self.legs.arrays(), self._scratch, self._fees, kind, offset, self._value,
                 self.bar_ns, v.risk, v.window, v.cursor, v.levels, v.lstate, v.queue, v.book,
                 v.pos, v.seen, v.pending, v.working, v.rest_n, v.cash, v.fees, v.orders,
                 v.acks, v.rest, cnt, v.cnt2, self._ex_buf, self._fee_buf, self._qa, self._qt,
                 self._qj, bars_ts, bars_eq)
            )  # fmt: skip
            if done < n and not len(prio) and oid[done] != 0 and action[done] != _TRADE:
                break  # L3 from here
            if done < n:  # the loop asked for room (l1.room)
                self._make_room()
        self._end_chunk(done, bars_ts, bars_eq)
        return done

    def _grow(self, rows: int) -> None:
        super()._grow(rows)
        k = len(self._ex_buf)
        if k > len(self._qa):
            self._qa, self._qt, self._qj = (_grown(a, k) for a in (self._qa, self._qt, self._qj))

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
            "l3": self._l3_figures(),
        }
        return result

    def _l3_figures(self) -> dict | None:
        """The L3 instruments and what their conversion to levels counted, summed (None: no
        L3 data)."""
        if not self._l3:
            return None
        stats = [c.stats() for c in self._l3.values()]
        return {"instruments": sorted(self._l3)} | {k: sum(s[k] for s in stats) for k in stats[0]}
