"""A target-position strategy against the L1 venue over recorded quotes, chunk by chunk.

    bt = Backtest("ema_cross", params, Latency(decision_us=50), instruments=[1], fee_bps=1.0)
    for quotes in chunks:            # QUOTE records in ts_recv order
        bt.feed(quotes)
    result = bt.finish()             # executions, equity bars, figures

The strategy's compiled step and the venue's matching run in one compiled loop per chunk
(venue/l1.py); between chunks Python only moves results out, so memory stays flat with length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from redline.feeds.events import QUOTE_DTYPE
from redline.strategies.target import strategy
from redline.venue import l1
from redline.venue.latency import Latency
from redline.venue.portfolio import summary

BAR_NS = 1_000_000_000  # equity sampled once a second of data time


@dataclass
class Result:
    events: int
    executions: np.ndarray  # l1.EXECUTION_DTYPE, one row per order
    bars_ts: np.ndarray  # equity bars: data time (ns) ...
    bars_eq: np.ndarray  # ... and equity (money) then
    figures: dict = field(default_factory=dict)  # portfolio.summary plus the run's counts


class Backtest:
    def __init__(self, name: str, params, latency: Latency, instruments: Sequence[int],
                 value_per_tick: dict[int, float] | None = None, fee_bps: float = 0.0,
                 bar_ns: int = BAR_NS) -> None:  # fmt: skip
        if not instruments:
            raise ValueError("backtest: no instruments")
        if not fee_bps >= 0:
            raise ValueError(f"backtest: fee_bps must be >= 0, got {fee_bps}")
        module = strategy(name)
        self.ids = np.array(sorted(set(instruments)), np.uint32)
        self.value = {int(i): 1.0 for i in self.ids} | dict(value_per_tick or {})
        self._value = np.array([self.value[int(i)] for i in self.ids], np.float64)
        self._step, self._p = module.step, params.vector()
        self._state = module.new_state(params, len(self.ids))
        self._legs, self._fee = latency.vector_ns(), fee_bps / 1e4
        self.venue = l1.VenueState(len(self.ids), bar_ns)
        self.bar_ns = bar_ns
        self.events = 0
        self._ex: list[np.ndarray] = []
        self._bars: list[tuple[np.ndarray, np.ndarray]] = []
        # Execution rows stay open until acked; the compiled loop writes into these buffers.
        self._ex_buf = np.zeros((0, 7), np.int64)
        self._fee_buf = np.zeros(0, np.float64)
        self._inst_buf = np.zeros(0, np.int64)

    def feed(self, quotes: np.ndarray) -> None:
        """Run the next QUOTE records (ts_recv order, continuing the previous chunk)."""
        if quotes.dtype != QUOTE_DTYPE:
            raise TypeError(f"backtest: wants QUOTE records, got dtype {quotes.dtype}")
        n = len(quotes)
        if not n:
            return
        iid = quotes["instrument_id"]
        idx = np.searchsorted(self.ids, iid)
        bad = (idx >= len(self.ids)) | (self.ids[np.minimum(idx, len(self.ids) - 1)] != iid)
        if bad.any():
            raise ValueError(
                f"backtest: instrument {int(iid[bad][0])} is not in {self.ids.tolist()}"
            )
        v, cnt = self.venue, self.venue.cnt
        start = int(cnt[l1.N_EXEC])
        self._grow(start + n)
        bars_ts, bars_eq = np.zeros(n + 1, np.int64), np.zeros(n + 1, np.float64)
        cnt[l1.N_BARS] = 0
        l1.run_chunk(quotes["ts_recv"], idx.astype(np.int64), quotes["bid_px"], quotes["ask_px"],
                     quotes["bid_sz"].astype(np.int64), quotes["ask_sz"].astype(np.int64),
                     self._step, self._state, self._p, self._legs, self._fee, self._value,
                     self.bar_ns, v.book, v.pos, v.seen, v.pending, v.cash, v.fees, v.orders,
                     v.acks, cnt, self._ex_buf, self._fee_buf, self._inst_buf, bars_ts,
                     bars_eq)  # fmt: skip
        self.events += n
        k = cnt[l1.N_BARS]  # copies: a view would keep the chunk-sized buffers alive
        self._bars.append((bars_ts[:k].copy(), bars_eq[:k].copy()))

    def _grow(self, rows: int) -> None:
        if rows <= len(self._ex_buf):
            return
        k = max(rows, 2 * len(self._ex_buf))
        ex, fee, inst = np.zeros((k, 7), np.int64), np.zeros(k), np.zeros(k, np.int64)
        m = len(self._ex_buf)
        ex[:m], fee[:m], inst[:m] = self._ex_buf, self._fee_buf, self._inst_buf
        self._ex_buf, self._fee_buf, self._inst_buf = ex, fee, inst

    def finish(self) -> Result:
        """The run's result. Orders still in flight when the data ended never reached the
        venue: they stay in the log unfilled (ts_venue 0) and are counted."""
        cnt, v = self.venue.cnt, self.venue
        n = int(cnt[l1.N_EXEC])
        ex = np.zeros(n, l1.EXECUTION_DTYPE)
        buf = self._ex_buf[:n]
        for c, name in enumerate(
            ("ts_decision", "ts_venue", "ts_ack", None, "qty_ordered", "qty", "px")
        ):
            if name is not None:
                ex[name] = buf[:, c]
        ex["instrument_id"] = self.ids[self._inst_buf[:n]]
        ex["fee"] = self._fee_buf[:n]
        bars_ts = (
            np.concatenate([b[0] for b in self._bars]) if self._bars else np.zeros(0, np.int64)
        )
        bars_eq = np.concatenate([b[1] for b in self._bars]) if self._bars else np.zeros(0)
        final = float(l1.equity(v.book, v.pos, v.cash, self._value))
        figures = summary(ex, bars_ts, bars_eq, final, self.value, self.bar_ns)
        figures |= {
            "events": self.events,
            "decisions": self.events,  # the strategy stepped once per quote
            "refused": int(cnt[l1.REFUSED]),
            "unfilled": int((ex["qty"] == 0).sum()),
            "in_flight_at_end": int(cnt[l1.O_TAIL] - cnt[l1.O_HEAD]),
            "position": {int(i): int(p) for i, p in zip(self.ids, v.pos, strict=True)},
        }
        return Result(self.events, ex, bars_ts, bars_eq, figures)
