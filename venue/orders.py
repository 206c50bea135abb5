"""What an order is in the simulated venue: its kinds, how it ended (or why it never went), the
per-order log's row, and how a target-position strategy's orders are priced (`--orders`).

One log row per order the strategy wanted, sent or not. A refused order (pre-trade risk, or too
many in flight) leaves a row with its reason and nothing filled, so every refusal is counted by
reason and none is lost. `px` is the average fill price: a limit order that takes the book on
arrival and then rests fills at two prices.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Literal

import msgspec
import numpy as np

from redline.feeds.settings import Settings
from redline.venue.pairs import settings_from_pairs


class Kind(IntEnum):
    MARKET = 0  # takes the touch on arrival, the rest is cancelled
    LIMIT = 1  # good till cancelled: takes what crosses on arrival, the rest rests at its price
    IOC = 2  # limit, immediate or cancel: takes what crosses on arrival, cancels the rest
    POST_ONLY = 3  # rests only: refused by the venue if it would cross on arrival


REFUSED = 16  # the first status of a pre-trade refusal


class Status(IntEnum):
    """How an order ended; from REFUSED on, why it was never sent."""

    SENT = 0  # still on its way to the venue when the data ended
    FILLED = 1  # all of it
    EXPIRED = 2  # market or IOC: what the touch had was taken (maybe nothing), the rest gone
    RESTING = 3  # open on the book when the data ended (qty: what filled so far)
    CANCELLED = 4  # by our cancel (qty: what filled before it arrived)
    POST_ONLY_CROSSED = 5  # the venue refused a post-only order that would have crossed
    OPEN_ORDERS_FULL = 6  # the venue refused it: MAX_RESTING of ours already rest
    MAX_POSITION = 16  # |position + what is in flight + this order| above risk.max_position
    MAX_NOTIONAL = 17  # |qty| * price * value of a tick above risk.max_notional
    ORDER_RATE = 18  # risk.max_orders_per_s already sent for this instrument in the last 1 s
    PRICE_BAND = 19  # limit price further from the mid than risk.band_bps
    KILL_SWITCH = 20  # equity fell to -risk.kill_loss: nothing more is sent
    REDUCING = 21  # state reducing and the order would not reduce |position|
    HALTED = 22  # state halted
    IN_FLIGHT = 23  # MAX_IN_FLIGHT orders and cancels already on their way


EXECUTION_DTYPE = np.dtype(
    [
        ("ts_decision", "<i8"),  # the quote's ts_recv + the decision leg: the order leaves
        ("ts_venue", "<i8"),  # + the entry leg: matched against the book as of then (0: never)
        ("ts_ack", "<i8"),  # when the strategy heard the last of it (0: not yet)
        ("instrument_id", "<u4"),
        ("kind", "u1"),  # Kind
        ("status", "u1"),  # Status: how it ended, or why it was refused
        ("limit_px", "<i8"),  # ticks; 0 for a market order
        ("qty_ordered", "<i8"),  # signed lots: + buy, - sell
        ("qty", "<i8"),  # signed lots filled
        ("px", "<f8"),  # average fill price in ticks; 0 when nothing filled
        ("fee", "<f8"),  # money, maker and taker fees together
    ]
)


class Orders(Settings):
    """How a target-position strategy's orders go out (`--orders kind=limit,offset=1`). A limit
    buy is priced at the bid plus `offset` ticks (a sell at the ask minus it): 0 joins the
    touch, the spread crosses it. A new target cancels the order of ours still resting on that
    instrument first (cancel + new: a modify)."""

    kind: Literal["market", "limit", "ioc", "post_only"] = "market"
    offset: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 0  # ticks

    @classmethod
    def parse(cls, text: str) -> Orders:
        return settings_from_pairs("--orders", text, cls, {"kind": "kind", "offset": "offset"})

    def code(self) -> int:
        return int(Kind[self.kind.upper()])
