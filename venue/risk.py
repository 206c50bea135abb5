"""Pre-trade risk: every order a strategy wants passes these checks, in the compiled loop, before
it is sent; a refused order is logged with its reason (orders.Status) and never sent.

In order: the trading state (halted refuses all; reducing lets through only an order that
brings |position| toward 0 without crossing it), the kill switch (equity at or below
-kill_loss trips it for the rest of the run), max position (|what the strategy has, filled and
in flight, plus this order|), max notional per order (|qty| * price * value of a tick, or
|qty| * face / price for an inverse contract: portfolio.notional; a market order is priced at
the touch it would take), the price band (a limit price within band_bps of
the mid), then the order rate (at most max_orders_per_s sent per instrument in any 1 s of data
time). A limit of 0 is no limit.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import numba as nb
import numpy as np

from redline.feeds.settings import NonNegativeFloat, NonNegativeInt, Settings
from redline.venue.orders import Status
from redline.venue.pairs import settings_from_pairs
from redline.venue.portfolio import notional

MAX_RATE = 4096  # orders per second per instrument the rate window can hold
STATES = ("active", "reducing", "halted")
# Slots of the risk vector the compiled check reads.
R_POS, R_NOTIONAL, R_RATE, R_BAND, R_KILL, R_STATE, R_TRIPPED = range(7)
ACTIVE, REDUCING, HALTED = range(3)
SECOND_NS = 1_000_000_000

_OK = 0
_MAX_POSITION, _MAX_NOTIONAL, _ORDER_RATE, _PRICE_BAND = (
    int(Status.MAX_POSITION), int(Status.MAX_NOTIONAL), int(Status.ORDER_RATE),
    int(Status.PRICE_BAND),
)  # fmt: skip
_KILL_SWITCH, _REDUCING, _HALTED = (
    int(Status.KILL_SWITCH), int(Status.REDUCING), int(Status.HALTED),
)  # fmt: skip


class Risk(Settings):
    """Pre-trade limits (`--risk max_position=5,band_bps=20,state=reducing`); 0: no limit."""

    max_position: NonNegativeInt = 0  # lots
    max_notional: NonNegativeFloat = 0.0  # money per order
    max_orders_per_s: Annotated[int, msgspec.Meta(ge=0, le=MAX_RATE)] = 0  # per instrument
    band_bps: NonNegativeFloat = 0.0  # limit price distance from the mid
    kill_loss: NonNegativeFloat = 0.0  # money lost that trips the kill switch
    state: Literal["active", "reducing", "halted"] = "active"

    @classmethod
    def parse(cls, text: str) -> Risk:
        return settings_from_pairs("--risk", text, cls, {k: k for k in cls.__struct_fields__})

    def vector(self) -> np.ndarray:
        return np.array(
            [self.max_position, self.max_notional, self.max_orders_per_s, self.band_bps,
             self.kill_loss, STATES.index(self.state), 0.0], np.float64,
        )  # fmt: skip

    def new_window(self, n_instruments: int) -> tuple[np.ndarray, np.ndarray]:
        """Send times of the last max_orders_per_s orders per instrument (a ring per row, far
        in the past to begin with) and each row's cursor (its oldest)."""
        ring = np.full((n_instruments, max(1, self.max_orders_per_s)), -(2**62), np.int64)
        return ring, np.zeros(n_instruments, np.int64)


@nb.njit(cache=True)
def check(r, j, have, q, px, limit, mid, value, equity, t, window, cursor) -> int:
    """0 when the order of `q` lots of instrument `j` (priced `px` ticks: its limit, or the
    touch for a market order) may go, else the Status of its refusal. `have`: the strategy's
    position, filled and in flight; `window[j]`, `cursor[j]`: its rate ring, moved on only
    when the order goes. `equity` is read only when a kill_loss is set."""
    if r[R_STATE] == HALTED:
        return _HALTED
    if r[R_TRIPPED]:
        return _KILL_SWITCH
    if r[R_STATE] == REDUCING:
        after = have + q
        if have == 0 or abs(after) >= abs(have) or (after != 0 and (after > 0) != (have > 0)):
            return _REDUCING
    if r[R_KILL] > 0 and equity <= -r[R_KILL]:
        r[R_TRIPPED] = 1.0  # for the rest of the run
        return _KILL_SWITCH
    if r[R_POS] > 0 and abs(have + q) > r[R_POS]:
        return _MAX_POSITION
    if r[R_NOTIONAL] > 0 and notional(q, px, value) > r[R_NOTIONAL]:
        return _MAX_NOTIONAL
    if limit and r[R_BAND] > 0 and abs(px - mid) > r[R_BAND] * 1e-4 * mid:
        return _PRICE_BAND
    if r[R_RATE] > 0:
        c = cursor[j]
        if t - window[j, c] < SECOND_NS:  # the oldest of the last max_orders_per_s is recent
            return _ORDER_RATE
        window[j, c] = t
        cursor[j] = (c + 1) % window.shape[1]
    return _OK
