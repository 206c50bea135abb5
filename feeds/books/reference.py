"""Plain-Python reference books: a dict of levels (L2) and a dict of orders (L3).

The obvious implementation, one Python call per delta, with the same
semantics as `l2.py` / `l3.py`. Tests use it as the oracle for the
compiled books; bench/bench_books.py uses it as the baseline.
"""

from __future__ import annotations

from redline.feeds.events import UNDEF_PX, BookAction, Side


class DictL2Book:
    """Levels as {px: size} per side; the best price is kept as it changes
    (max/min over the side only when the best level goes)."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.missing_deletes = 0

    def apply(self, side: int, action: int, px: int, sz: int) -> None:
        if action == BookAction.CLEAR:
            self.bids.clear()
            self.asks.clear()
            self.best_bid = self.best_ask = None
            return
        if action not in (BookAction.ADD, BookAction.UPDATE, BookAction.DELETE):
            return
        ask = side == Side.ASK
        levels = self.asks if ask else self.bids
        if action == BookAction.DELETE or sz <= 0:
            if levels.pop(px, None) is None:
                self.missing_deletes += 1
            elif ask and px == self.best_ask:
                self.best_ask = min(levels) if levels else None
            elif not ask and px == self.best_bid:
                self.best_bid = max(levels) if levels else None
            return
        levels[px] = sz
        if ask and (self.best_ask is None or px < self.best_ask):
            self.best_ask = px
        elif not ask and (self.best_bid is None or px > self.best_bid):
            self.best_bid = px

    def best(self) -> tuple[int, int, int, int]:
        bid, ask = self.best_bid, self.best_ask
        return (
            bid if bid is not None else UNDEF_PX,
            self.bids[bid] if bid is not None else 0,
            ask if ask is not None else UNDEF_PX,
            self.asks[ask] if ask is not None else 0,
        )

    def levels(self, side: Side, depth: int) -> list[tuple[int, int]]:
        levels = self.asks if side == Side.ASK else self.bids
        keys = sorted(levels, reverse=side != Side.ASK)[:depth]
        return [(k, levels[k]) for k in keys]


class DictL3Book:
    """Orders as {order_id: (side, px, size)}, levels as {px: [size, count]},
    the best price kept as levels come and go.

    ADD inserts (an existing id is replaced), UPDATE modifies (an unknown id
    is added), DELETE cancels `sz` lots (0 or all that is left removes the
    order), FILL/TRADE leave the book alone, CLEAR wipes it."""

    def __init__(self) -> None:
        self.orders: dict[int, tuple[int, int, int]] = {}
        self.bids: dict[int, list[int]] = {}
        self.asks: dict[int, list[int]] = {}
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.missing_cancels = 0

    def _level_add(self, side: int, px: int, dsize: int, dcount: int) -> None:
        ask = side == Side.ASK
        levels = self.asks if ask else self.bids
        lvl = levels.get(px)
        if lvl is None:
            lvl = levels[px] = [0, 0]
            if ask and (self.best_ask is None or px < self.best_ask):
                self.best_ask = px
            elif not ask and (self.best_bid is None or px > self.best_bid):
                self.best_bid = px
        lvl[0] += dsize
        lvl[1] += dcount
        if lvl[1] <= 0:
            del levels[px]
            if ask and px == self.best_ask:
                self.best_ask = min(levels) if levels else None
            elif not ask and px == self.best_bid:
                self.best_bid = max(levels) if levels else None

    def apply(self, side: int, action: int, px: int, sz: int, order_id: int) -> None:
        if action == BookAction.CLEAR:
            self.orders.clear()
            self.bids.clear()
            self.asks.clear()
            self.best_bid = self.best_ask = None
            return
        old = self.orders.get(order_id)
        if action in (BookAction.ADD, BookAction.UPDATE):
            if old is not None:
                self._level_add(old[0], old[1], -old[2], -1)
            self.orders[order_id] = (side, px, sz)
            self._level_add(side, px, sz, 1)
        elif action == BookAction.DELETE:
            if old is None:
                self.missing_cancels += 1
                return
            if sz <= 0 or sz >= old[2]:
                del self.orders[order_id]
                self._level_add(old[0], old[1], -old[2], -1)
            else:
                self.orders[order_id] = (old[0], old[1], old[2] - sz)
                self._level_add(old[0], old[1], -sz, 0)

    def best(self) -> tuple[int, int, int, int]:
        bid, ask = self.best_bid, self.best_ask
        return (
            bid if bid is not None else UNDEF_PX,
            self.bids[bid][0] if bid is not None else 0,
            ask if ask is not None else UNDEF_PX,
            self.asks[ask][0] if ask is not None else 0,
        )
