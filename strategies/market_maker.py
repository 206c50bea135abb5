"""`market_maker`: a passive quoting strategy, a bid and an ask around the microprice, skewed
against its inventory; it exercises the venue's resting (post-only) orders and cancels.

Per quote of an instrument: the microprice m = (bid * ask_sz + ask * bid_sz) / (bid_sz +
ask_sz) leans toward the side showing less size, where the next trade is likelier; the fair
price is m - skew * position (long: it offers lower to sell and bids lower to buy less); it
bids `qty` at floor(fair - half_spread) and offers `qty` at ceil(fair + half_spread), never
through the touch (its bid below the ask, its ask above the bid: post-only would be refused),
and stops bidding at +max_inventory lots (offering at -max_inventory). With `every` = K it
requotes on every K-th book update of an instrument only (and keeps its quotes, and their
place in the queue, in between), as a quoter on a timer does; a fill still skews the next.

A quoting strategy (strategies/target.py): `Params`, `new_state`, and a compiled
`quote(row, p, bid_px, ask_px, bid_sz, ask_sz, position)` that writes the quotes it wants into
row[0:4]; the backtest's compiled loop cancels and replaces what it has resting to match.
"""

from __future__ import annotations

import math
from typing import Annotated

import msgspec
import numba as nb
import numpy as np

from redline.feeds.settings import NonNegativeFloat, PositiveInt, Settings

# State row: the wanted quotes (what target.py's quoting API reads), then book updates seen.
BID_PX, BID_QTY, ASK_PX, ASK_QTY, COUNT = range(5)


class Params(Settings):
    """market_maker's settings (`--param half_spread=2` and so on); prices in ticks."""

    half_spread: Annotated[float, msgspec.Meta(ge=0.0, le=1e6)] = 1.0  # from fair to each quote
    skew: NonNegativeFloat = 0.5  # ticks the fair price moves per lot held
    qty: PositiveInt = 1  # lots on each side
    max_inventory: PositiveInt = 5  # lots held long (short) past which it stops bidding (offering)
    every: PositiveInt = 1  # requote on every `every`-th book update

    def vector(self) -> np.ndarray:
        """The parameters as the compiled quote reads them."""
        return np.array([self.half_spread, self.skew, self.qty, self.max_inventory, self.every],
                        np.float64)  # fmt: skip


def new_state(params: Params, n_instruments: int) -> np.ndarray:
    return np.zeros((n_instruments, 5), np.float64)


@nb.njit(cache=True)
def quote(row, p, bid_px, ask_px, bid_sz, ask_sz, position) -> None:
    """One quote of one instrument: the bid and ask it wants, into row[0:4]."""
    row[COUNT] += 1.0
    if (row[COUNT] - 1.0) % p[4] != 0.0:
        return  # between requotes: what it wants stays
    shown = bid_sz + ask_sz
    micro = 0.5 * (bid_px + ask_px) if shown <= 0 else (bid_px * ask_sz + ask_px * bid_sz) / shown
    fair = micro - p[1] * position
    row[BID_PX] = min(math.floor(fair - p[0]), ask_px - 1)
    row[ASK_PX] = max(math.ceil(fair + p[0]), bid_px + 1)
    row[BID_QTY] = p[2] if position < p[3] else 0.0
    row[ASK_QTY] = p[2] if position > -p[3] else 0.0
