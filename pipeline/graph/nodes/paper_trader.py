"""A registered strategy (strategies/target.py) in the graph, trading the simulated L1 venue.

Each answer of the arbiter node carries the quote it was asked for (nodes/answer_quote.py).
`PaperTrader.decide` turns a batch of answers back into those QUOTE records and hands them to
the very object a backtest runs (`venue.backtest.Backtest.feed`): the strategy's compiled step,
pre-trade risk and the venue's matching in one compiled loop, so the graph and replay decide
and fill alike by construction. For model_signal, each answer's score is the prediction its
step reads (strategies/model_signal_live.py); a safe default (no worker in time) reads NaN,
which keeps the side it had. Strategies that read no model (ema_cross, market_maker) step on
every quote whatever the answer's origin: the answer only brought them the quote.

One DECISION record goes out per answer; side, qty and px are those of the first order the
strategy sent on that quote (a refused one too: it is what the strategy decided), else NONE.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numba as nb
import numpy as np

from redline.feeds.events import QUOTE_DTYPE, Origin, Side
from redline.feeds.settings import plain
from redline.strategies.model_signal_live import LiveSignal
from redline.strategies.signal_trader import decisions_for
from redline.strategies.target import strategy
from redline.venue import l1
from redline.venue.backtest import Backtest, Result, rejections
from redline.venue.latency import Latency, Legs, drawn
from redline.venue.orders import Kind, Orders
from redline.venue.risk import Risk

_KEY_SHIFT = 20  # (decision time - base) << 20 | instrument row: one int64 key per quote
_SPAN_NS = 1 << (63 - _KEY_SHIFT - 1)  # decision times of one batch must lie this close (~73 min)


def parts(spec) -> tuple[Any, Any, Legs, Risk, Orders | None]:
    """The registered strategy of a StrategySpec, its Params, constant latency legs, risk
    limits and order kind; ValueError naming the field and what is valid."""
    module = strategy(spec.strategy)
    try:
        params = msgspec.convert(dict(spec.params), module.Params, strict=False)
    except msgspec.ValidationError as exc:
        why = plain(str(exc), dict(spec.params), module.Params)
        raise ValueError(f"field 'params': {spec.strategy}: {why}") from None
    try:
        legs = Latency.parse(spec.latency).legs()
        orders = Orders.parse(spec.orders) if spec.orders else None
        return module, params, legs, Risk.parse(spec.risk), orders
    except ValueError as exc:  # "--latency 'x': ..." names the flag these fields mirror
        raise ValueError(f"strategy {spec.strategy!r}: {exc}") from None


class PaperTrader:
    """Answers (ANSWER_QUOTE_DTYPE) -> DECISION records, through `backtest`."""

    def __init__(self, backtest: Backtest, live: LiveSignal | None = None) -> None:
        """`live`: the model_signal binding whose state `backtest` steps on, None for a
        strategy that reads no model."""
        self.bt = backtest
        self.live = live
        self.missing_quote = 0  # answers whose asked quote never reached this node: not stepped
        self.other_instruments = 0  # answers of instruments not in the venue's: not stepped
        self._seq = 0

    @classmethod
    def from_spec(cls, spec) -> PaperTrader:
        module, params, legs, limits, orders = parts(spec)
        live = LiveSignal() if hasattr(module, "stream") else None  # model_signal
        bt = Backtest(live or module, params, legs, spec.instruments, fee_bps=spec.fee_bps,
                      maker_bps=spec.maker_bps, risk=limits, orders=orders)  # fmt: skip
        return cls(bt, live)

    def decide(self, answers: np.ndarray) -> np.ndarray:
        """One DECISION per answer, in order; `ts_decision` is left to the emitter."""
        n = len(answers)
        out = decisions_for(answers, self._seq)
        self._seq += n
        found = answers["quote_found"] == 1
        self.missing_quote += n - int(found.sum())
        ids = self.bt.ids
        row = np.minimum(np.searchsorted(ids, answers["instrument_id"]), len(ids) - 1)
        ours = ids[row] == answers["instrument_id"]
        self.other_instruments += int((found & ~ours).sum())
        found &= ours
        if not found.all():
            answers = answers[found]
        step = self.live.width if self.live is not None else max(len(answers), 1)
        decided = np.flatnonzero(found)
        for s in range(0, len(answers), step):  # model_signal: <= width quotes per write
            self._run(answers[s : s + step], out, decided[s : s + step])
        return out

    def _run(self, answers: np.ndarray, out: np.ndarray, at: np.ndarray) -> None:
        """Step `answers` (all with their quote) and write their orders into out[at]."""
        bt = self.bt
        quotes = np.zeros(len(answers), QUOTE_DTYPE)
        for f in ("ts_event", "ts_recv", "instrument_id"):
            quotes[f] = answers[f]
        quotes["seq"], quotes["source_id"] = answers["input_seq"], answers["input_source_id"]
        for f in ("bid_px", "ask_px", "bid_sz", "ask_sz", "flags"):
            quotes[f] = answers[f"quote_{f}"]
        rows = np.searchsorted(bt.ids, quotes["instrument_id"])  # all in bt.ids (decide)
        if self.live is not None:
            pred = answers["score"].astype(np.float64)
            pred[answers["origin"] == Origin.DEFAULT] = np.nan  # no model answer: keep the side
            self.live.write(rows, pred)
        first_row = int(bt.venue.cnt[l1.N_EXEC])
        first_decision = int(bt.venue.cnt[l1.DECISIONS])
        bt.feed(quotes)
        made = bt.orders_since(first_row)
        if not len(made):
            return
        # Which quote each order came from: its decision time is the quote's ts_recv plus
        # the decision leg drawn for that quote's step number, on the same instrument.
        t_dec = quotes["ts_recv"] + _decision_legs(bt.legs.decision, first_decision, len(quotes))
        base = int(min(t_dec.min(), made[:, l1.C_DEC].min()))
        assert int(max(t_dec.max(), made[:, l1.C_DEC].max())) - base < _SPAN_NS
        keys = ((t_dec - base) << _KEY_SHIFT) | rows
        order = np.argsort(keys, kind="stable")
        want = ((made[:, l1.C_DEC] - base) << _KEY_SHIFT) | made[:, l1.C_INST]
        q = order[np.searchsorted(keys, want, sorter=order)]  # quote index of each order
        assert (keys[q] == want).all(), "an order that no quote of the batch made"
        q, first = np.unique(q, return_index=True)  # the first order of each quote
        rec = made[first]
        buy = rec[:, l1.C_QORD] > 0
        px = np.where(buy, quotes["ask_px"][q], quotes["bid_px"][q])  # a market order: the touch
        px = np.where(rec[:, l1.C_KIND] == Kind.MARKET, px, rec[:, l1.C_LIMIT])
        dst = at[q]
        out["side"][dst] = np.where(buy, Side.BID, Side.ASK)
        out["qty"][dst] = np.abs(rec[:, l1.C_QORD])
        out["px"][dst] = px

    def finish(self) -> Result:
        """The run's result, as a backtest's (Backtest.finish)."""
        return self.bt.finish()

    def stats(self) -> dict[str, Any]:
        """Orders, fills, refusals and PnL so far (figures of Backtest.finish)."""
        f = self.bt.finish().figures
        return {
            "strategy_steps": f["decisions"],
            "orders": f["orders"],
            "fills": f["fills"],
            "refused": f["refused"],
            "rejections": rejections(f),
            "pnl": f["pnl"],
            "fees": f["fees"],
            "position": f["position"],
            "missing_quote": self.missing_quote,
            "other_instruments": self.other_instruments,
            "journal_sha256": f["journal_sha256"],
        }


@nb.njit(cache=True)
def _decision_legs(samples, first_decision, n):
    """The decision leg of the next `n` strategy steps after step number `first_decision`:
    what venue/l1.py draws for each (latency.drawn)."""
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = drawn(samples, first_decision + 1 + i)
    return out
