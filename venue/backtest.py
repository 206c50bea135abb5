"""A target-position strategy against the L1 venue over recorded quotes, chunk by chunk.

    bt = Backtest("ema_cross", params, Latency(decision_us=50), instruments=[1], fee_bps=1.0,
                  risk=Risk(max_position=5), orders=Orders(kind="limit"))
    for quotes in chunks:            # QUOTE records in ts_recv order
        bt.feed(quotes)
    result = bt.finish()             # executions, equity bars, figures

The strategy's compiled step, pre-trade risk and the venue's matching run in one compiled loop
per chunk (venue/l1.py); between chunks Python only moves results out, so memory stays flat
with length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from redline.feeds.events import QUOTE_DTYPE
from redline.strategies.target import strategy
from redline.venue import l1, loops
from redline.venue.latency import Latency, Legs
from redline.venue.orders import EXECUTION_DTYPE, REFUSED, Orders, Status
from redline.venue.portfolio import summary
from redline.venue.risk import Risk

BAR_NS = 1_000_000_000  # equity sampled once a second of data time
_ROWS_AHEAD = 1 << 12  # order rows free before a chunk runs; the loop asks for more


@dataclass
class Result:
    events: int
    executions: np.ndarray  # orders.EXECUTION_DTYPE, one row per order (refused ones too)
    bars_ts: np.ndarray  # equity bars: data time (ns) ...
    bars_eq: np.ndarray  # ... and equity (money) then
    figures: dict = field(default_factory=dict)  # portfolio.summary plus the run's counts


class Backtest:
    VENUE = "l1"  # which compiled loop (venue/loops.py)

    def __init__(self, name: str | ModuleType, params, latency: Latency | Legs,
                 instruments: Sequence[int],
                 value_per_tick: dict[int, float] | None = None, fee_bps: float = 0.0,
                 maker_bps: float = 0.0, risk: Risk | None = None, orders: Orders | None = None,
                 bar_ns: int = BAR_NS) -> None:  # fmt: skip
        """`name`: a registered strategy, or a module with its API (strategies/target.py).
        `fee_bps`: taker fee (what crosses on arrival); `maker_bps`: on resting fills (a
        rebate below 0)."""
        if not instruments:
            raise ValueError("backtest: no instruments")
        if not fee_bps >= 0:
            raise ValueError(f"backtest: fee_bps must be >= 0, got {fee_bps}")
        if not math.isfinite(maker_bps):
            raise ValueError(
                f"backtest: maker_bps must be a number (< 0: a rebate), got {maker_bps}"
            )
        module = strategy(name) if isinstance(name, str) else name
        self.ids = np.array(sorted(set(instruments)), np.uint32)
        self.value = {int(i): 1.0 for i in self.ids} | dict(value_per_tick or {})
        self._value = np.array([self.value[int(i)] for i in self.ids], np.float64)
        # A quoting strategy (strategies/target.py) has `quote` in place of `step`.
        self._quoting = hasattr(module, "quote")
        self._loop = loops.loop(self.VENUE, module)
        self._p = params.vector()
        self._state = module.new_state(params, len(self.ids))
        self.legs = latency.legs() if isinstance(latency, Latency) else latency
        self._scratch = np.zeros(3, np.int64)  # the legs of the decision being stepped
        self._fees = np.array([fee_bps, maker_bps]) / 1e4
        if self._quoting and orders is not None and orders.kind != "post_only":
            raise ValueError(
                f"backtest: {name if isinstance(name, str) else module.__name__} quotes post-only "
                "orders; "
                f"drop --orders kind={orders.kind}"
            )
        self.orders = orders or Orders(kind="post_only" if self._quoting else "market")
        self.bar_ns = bar_ns
        self.venue = self._new_venue(risk or Risk())
        self.events = 0
        self._ex: list[np.ndarray] = []
        self._bars: list[tuple[np.ndarray, np.ndarray]] = []
        # Execution rows stay open until acked; the compiled loop writes into these buffers.
        self._ex_buf = np.zeros((0, l1.N_COLUMNS), np.int64)
        self._fee_buf = np.zeros(0, np.float64)

    def _new_venue(self, limits: Risk) -> l1.VenueState:
        return l1.VenueState(len(self.ids), self.bar_ns, limits)

    def feed(self, quotes: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Run the next QUOTE records (ts_recv order, continuing the previous chunk). `rows`:
        their instruments' indices in the sorted ids (int64), where the caller has them."""
        if quotes.dtype != QUOTE_DTYPE:
            raise TypeError(f"backtest: wants QUOTE records, got dtype {quotes.dtype}")
        n = len(quotes)
        if not n:
            return
        idx = self._dense(quotes["instrument_id"]) if rows is None else rows
        v, cnt = self.venue, self.venue.cnt
        bars_ts, bars_eq = self._start_chunk(n)
        ts, flags, bid, ask = quotes["ts_recv"], quotes["flags"], quotes["bid_px"], quotes["ask_px"]
        bsz, asz = quotes["bid_sz"], quotes["ask_sz"]  # int64 already: views, not copies
        kind, offset = self.orders.code(), self.orders.offset
        done = 0
        while done < n:  # more than once only when the loop asked for room (l1.room)
            if done:
                self._make_room()
            s = slice(done, n)
            done += self._loop(
                (ts[s], idx[s], flags[s], bid[s], ask[s], bsz[s], asz[s], self._state, self._p,
                 self.legs.arrays(), self._scratch, self._fees, kind, offset, self._value,
                 self.bar_ns, v.risk, v.window, v.cursor, v.book, v.pos, v.seen, v.pending,
                 v.working, v.rest_n, v.cash, v.fees, v.orders, v.acks, v.rest, cnt,
                 self._ex_buf, self._fee_buf, bars_ts, bars_eq)
            )  # fmt: skip
        self._end_chunk(n, bars_ts, bars_eq)

    def orders_since(self, start: int) -> np.ndarray:
        """The int64 order rows (l1's C_* columns, C_INST a dense index) made since row
        `start`, as a view valid until the next `feed`: what a caller that streams quotes in
        (the graph's strategy node) reports per decision."""
        return self._ex_buf[start : int(self.venue.cnt[l1.N_EXEC])]

    def _dense(self, iid: np.ndarray) -> np.ndarray:
        """Dense instrument indices of the ids `iid`; ValueError naming one not in the run."""
        if len(self.ids) == 1 and (iid == int(self.ids[0])).all():  # one pass, in iid's dtype
            return np.zeros(len(iid), np.int64)
        idx = np.searchsorted(self.ids, iid)
        bad = (idx >= len(self.ids)) | (self.ids[np.minimum(idx, len(self.ids) - 1)] != iid)
        if bad.any():
            raise ValueError(
                f"backtest: instrument {int(iid[bad][0])} is not in {self.ids.tolist()}"
            )
        return idx.astype(np.int64)

    def _start_chunk(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Room for the equity bars `n` events can make, and for some order rows: the loop
        stops when they run out (l1.room). Reserving the most they could make, a bid and an
        ask an event, cost ~40% of the L2 market maker's time on the Binance capture, which
        sends one order per ~400 events."""
        self._grow(int(self.venue.cnt[l1.N_EXEC]) + _ROWS_AHEAD)
        self.venue.cnt[l1.N_BARS] = 0
        return np.zeros(n + 1, np.int64), np.zeros(n + 1, np.float64)

    def _make_room(self) -> None:
        """What the loop stopped for (l1.room): more order rows, or a bigger ack ring."""
        v = self.venue
        if int(v.cnt[l1.N_EXEC]) + 2 > len(self._ex_buf):
            self._grow(len(self._ex_buf) + 1)  # doubles it
        else:
            v.grow_acks()

    def _end_chunk(self, n: int, bars_ts: np.ndarray, bars_eq: np.ndarray) -> None:
        self.events += n
        k = self.venue.cnt[l1.N_BARS]  # copies: a view would keep the chunk's buffers alive
        self._bars.append((bars_ts[:k].copy(), bars_eq[:k].copy()))

    def _grow(self, rows: int) -> None:
        if rows <= len(self._ex_buf):
            return
        k = max(rows, 2 * len(self._ex_buf))
        ex, fee = np.zeros((k, l1.N_COLUMNS), np.int64), np.zeros(k)
        m = len(self._ex_buf)
        ex[:m], fee[:m] = self._ex_buf, self._fee_buf
        self._ex_buf, self._fee_buf = ex, fee

    def finish(self) -> Result:
        """The run's result. Orders still on their way when the data ended never reached the
        venue (status SENT); orders resting then stay RESTING; both are counted."""
        cnt, v = self.venue.cnt, self.venue
        n = int(cnt[l1.N_EXEC])
        buf = self._ex_buf[:n]
        ex = np.zeros(n, EXECUTION_DTYPE)
        ex["ts_decision"], ex["ts_venue"], ex["ts_ack"] = (
            buf[:, l1.C_DEC], buf[:, l1.C_VENUE], buf[:, l1.C_ACK],
        )  # fmt: skip
        ex["instrument_id"] = self.ids[buf[:, l1.C_INST]]
        ex["kind"], ex["status"], ex["limit_px"] = (
            buf[:, l1.C_KIND], buf[:, l1.C_STATUS], buf[:, l1.C_LIMIT],
        )  # fmt: skip
        ex["qty_ordered"], ex["qty"] = buf[:, l1.C_QORD], buf[:, l1.C_QTY]
        filled = np.abs(buf[:, l1.C_QTY])
        ex["px"] = np.divide(buf[:, l1.C_NOTIONAL], filled, out=np.zeros(n), where=filled > 0)
        ex["fee"] = self._fee_buf[:n]
        bars_ts = (
            np.concatenate([b[0] for b in self._bars]) if self._bars else np.zeros(0, np.int64)
        )
        bars_eq = np.concatenate([b[1] for b in self._bars]) if self._bars else np.zeros(0)
        final = float(l1.equity(v.book, v.pos, v.cash, self._value))
        figures = summary(ex, bars_ts, bars_eq, final, self.value, self.bar_ns)
        status = np.bincount(ex["status"], minlength=max(Status) + 1)
        figures |= {
            "events": self.events,
            "decisions": int(cnt[l1.DECISIONS]),  # the strategy's steps
            "refused": int(status[REFUSED:].sum()),
            "refused_by_reason": {s.name.lower(): int(status[s]) for s in Status if s >= REFUSED},
            "post_only_crossed": int(status[Status.POST_ONLY_CROSSED]),
            "open_orders_full": int(status[Status.OPEN_ORDERS_FULL]),
            "expired_unfilled": int(((ex["status"] == Status.EXPIRED) & (ex["qty"] == 0)).sum()),
            "cancels": int(cnt[l1.CANCELS]),
            "cancels_too_late": int(cnt[l1.LATE_CANCELS]),
            "resting_at_end": int(status[Status.RESTING]),
            "in_flight_at_end": int(status[Status.SENT]),
            "position": {int(i): int(p) for i, p in zip(self.ids, v.pos, strict=True)},
        }
        return Result(self.events, ex, bars_ts, bars_eq, figures)


def rejections(figures: dict) -> int:
    """Orders refused before they left (risk, in-flight bound), refused by the venue, or that
    found nothing to take (market and IOC), from `Result.figures`."""
    return (figures["refused"] + figures["post_only_crossed"] + figures["open_orders_full"]
            + figures["expired_unfilled"])  # fmt: skip
