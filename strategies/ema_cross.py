"""`ema_cross`: the cross-engine backtest workload, as a target-position strategy.

An EMA of the mid (alpha 0.01 by default, seeded with the first mid); every `every` quotes of
an instrument, the side of the mid against its EMA is the wanted side (+1 above, -1 at or
below), and the target position is that side times `qty`. The same rule runs in
../shared/anchors/backtest_engines_bench.py on NautilusTrader, vectorbt, backtrader and a bare
loop, so a figure here can stand beside theirs.

A target-position strategy is three things (strategies/target.py): its `Params` (validated
settings), `new_state(params, n_instruments)` (preallocated float64 state, one row per
instrument) and a compiled `step(state_row, params_vector, bid_px, ask_px, position) -> target`,
called once per quote by the backtest's compiled loop, never from Python per event.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import numba as nb
import numpy as np

from redline.feeds.settings import PositiveInt, Settings

# State row: EMA of the mid, quotes since the last decision, wanted side (+1/-1, 0 before the
# first decision).
EMA, COUNT, SIDE = range(3)


class Params(Settings):
    """ema_cross's settings (`--param alpha=0.02` and so on)."""

    alpha: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.01  # EMA weight of the new mid
    every: PositiveInt = 100  # decide on every `every`-th quote of an instrument
    qty: PositiveInt = 1  # lots held, long or short

    def vector(self) -> np.ndarray:
        """The parameters as the compiled step reads them."""
        return np.array([self.alpha, self.every, self.qty], np.float64)


def new_state(params: Params, n_instruments: int) -> np.ndarray:
    state = np.zeros((n_instruments, 3), np.float64)
    state[:, EMA] = np.nan  # seeded by the first mid
    return state


@nb.njit(cache=True)
def step(state, p, bid_px, ask_px, position) -> int:
    """One quote of one instrument; returns the target position in lots."""
    mid = 0.5 * (bid_px + ask_px)
    ema = state[EMA]
    state[EMA] = mid if np.isnan(ema) else p[0] * mid + (1.0 - p[0]) * ema
    state[COUNT] += 1.0
    if state[COUNT] == p[1]:  # a compare, not a float modulo: ~2x the whole loop's speed
        state[COUNT] = 0.0
        state[SIDE] = 1.0 if mid > state[EMA] else -1.0
    return int(state[SIDE] * p[2])
