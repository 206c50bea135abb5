"""Model score -> order decision, behind risk checks.

The model scores each instrument in [-1, 1] (expected direction of the next
mid move). Above `threshold` the trader takes liquidity: buys `qty` lots at
the ask or sells at the bid. Before any new risk it checks, in order:

0. late: past its deadline (`ts_recv` + the graph's budget, stamped by the
   arbiter) a decision adds no risk: it is counted as LATE and does nothing;
1. halted: a sequence gap (Flag.GAP_BEFORE) stops quoting the instrument
   until a snapshot (Flag.SNAPSHOT) re-syncs it; the kill switch (`kill_switch`,
   set by the graph's control plane) halts every instrument while it is on;
2. stale: the quote is older than `stale_after_us` by the graph's clock;
3. signal: |score| below the threshold does nothing;
4. position limit: the order is cut to what keeps |position| <= max_position;
5. order rate: at most `max_orders_per_s` orders per instrument in any 1 s.

A decision from the arbiter's safe default (Origin.DEFAULT: no worker
answered by the deadline) never adds risk: it does nothing, or flattens when
`flatten_on_default` is set. Positions follow the decisions (no venue fills
here), which is what the limits guard.
"""

from __future__ import annotations

from collections import defaultdict, deque
from enum import IntEnum

import numpy as np

from redline.feeds.clock import Clock
from redline.feeds.events import DECISION_DTYPE, Flag, Origin, Side
from redline.feeds.settings import DurationUs, NonNegativeFloat, PositiveInt, Settings

_SECOND_NS = 1_000_000_000

# What the strategy reads: the arbiter's decision-to-be plus the latest quote
# of its instrument, which the order is priced against.
ANSWER_DTYPE = np.dtype([*DECISION_DTYPE.descr, ("bid_px", "<i8"), ("ask_px", "<i8")])


def decisions_for(answers: np.ndarray, last_seq: int) -> np.ndarray:
    """One DECISION per answer (its decision fields copied), numbered from `last_seq` + 1:
    what a strategy node then fills in; `ts_decision` is left to the emitter."""
    out = np.zeros(len(answers), DECISION_DTYPE)
    for name in DECISION_DTYPE.names:
        out[name] = answers[name]
    out["seq"] = np.arange(last_seq + 1, last_seq + 1 + len(answers), dtype=np.uint64)
    return out


class SignalTraderConfig(Settings):
    """The trader's settings; a graph's strategy node sets them in its TOML table."""

    threshold: NonNegativeFloat = 0.2  # |score| above which the strategy trades
    qty: PositiveInt = 1  # lots per order
    max_position: PositiveInt = 10  # lots, per instrument, either side
    max_orders_per_s: PositiveInt = 50  # per instrument
    stale_after_us: DurationUs = 50_000  # no new risk on data older than this
    flatten_on_default: bool = False  # safe default: flatten instead of doing nothing


class Reason(IntEnum):
    """Why a decision is what it is (counted in `SignalTrader.counts`)."""

    ORDER = 0
    NO_SIGNAL = 1
    HALTED = 2
    STALE = 3
    POSITION_LIMIT = 4
    RATE_LIMIT = 5
    DEFAULT = 6  # safe default: no new risk
    FLATTEN = 7  # safe default: flatten
    LATE = 8  # past its deadline: no new risk


class SignalTrader:
    """Turns ANSWER records into DECISION records."""

    def __init__(self, params: SignalTraderConfig, clock: Clock) -> None:
        self.p = params
        self.clock = clock
        self.stale_ns = params.stale_after_us * 1000
        self.position: dict[int, int] = defaultdict(int)  # lots, + long / - short
        self.halted: set[int] = set()
        self._orders: dict[int, deque[int]] = defaultdict(deque)  # order times per instrument
        self.counts: dict[Reason, int] = dict.fromkeys(Reason, 0)
        self._seq = 0
        self.kill_switch = False  # on: no decision adds risk (counted as HALTED)

    def decide(self, answers: np.ndarray) -> np.ndarray:
        """One DECISION per answer, in order; `ts_decision` is left to the emitter."""
        n = len(answers)
        out = decisions_for(answers, self._seq)
        self._seq += n
        now = self.clock.now_ns()  # wall time: compared with ts_recv
        bids, asks = answers["bid_px"], answers["ask_px"]
        late = ((answers["deadline"] != 0) & (answers["deadline"] < now)).tolist()
        flags = out["flags"].tolist()
        for i in range(n):
            inst = int(out["instrument_id"][i])
            if flags[i] & Flag.SNAPSHOT:
                self.halted.discard(inst)
            if flags[i] & Flag.GAP_BEFORE:
                self.halted.add(inst)
            if late[i]:  # one deadline for the whole graph: after it, no new risk
                self.counts[Reason.LATE] += 1
                continue
            if self.kill_switch:  # an operator stopped all new risk, flattening included
                self.counts[Reason.HALTED] += 1
                continue
            reason, side, qty, px = self._one(
                inst,
                int(out["origin"][i]),
                float(out["score"][i]),
                int(out["ts_recv"][i]),
                int(bids[i]),
                int(asks[i]),
                now,
            )
            self.counts[reason] += 1
            if side != Side.NONE:
                out["side"][i], out["qty"][i], out["px"][i] = side, qty, px
        return out

    def _one(self, inst, origin, score, ts_recv, bid, ask, now):
        stale = now - ts_recv > self.stale_ns or bid <= 0 or ask <= 0
        if origin == Origin.DEFAULT:
            pos = self.position[inst]
            if not self.p.flatten_on_default or pos == 0 or stale or not self._rate_ok(inst, now):
                return Reason.DEFAULT, Side.NONE, 0, 0
            side = Side.ASK if pos > 0 else Side.BID
            return Reason.FLATTEN, *self._fill(inst, side, min(abs(pos), self.p.qty), bid, ask, now)
        if inst in self.halted:
            return Reason.HALTED, Side.NONE, 0, 0
        if stale:
            return Reason.STALE, Side.NONE, 0, 0
        if abs(score) < self.p.threshold:
            return Reason.NO_SIGNAL, Side.NONE, 0, 0
        side = Side.BID if score > 0 else Side.ASK
        pos = self.position[inst]
        room = self.p.max_position - pos if side == Side.BID else self.p.max_position + pos
        qty = min(self.p.qty, room)
        if qty <= 0:
            return Reason.POSITION_LIMIT, Side.NONE, 0, 0
        if not self._rate_ok(inst, now):
            return Reason.RATE_LIMIT, Side.NONE, 0, 0
        return Reason.ORDER, *self._fill(inst, side, qty, bid, ask, now)

    def _rate_ok(self, inst: int, now: int) -> bool:
        times = self._orders[inst]
        while times and now - times[0] >= _SECOND_NS:
            times.popleft()
        return len(times) < self.p.max_orders_per_s

    def _fill(self, inst, side, qty, bid, ask, now):
        self._orders[inst].append(now)
        self.position[inst] += qty if side == Side.BID else -qty
        return side, qty, ask if side == Side.BID else bid
